package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/a2aproject/a2a-go/a2asrv/eventqueue"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
)

// loopbackDialer dials the agents' host names on the loopback listeners
// that serve them, and nothing else.
type loopbackDialer map[string]string

func (l loopbackDialer) transport(t testing.TB) *http.Transport {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		to, ok := l[host]
		if !ok {
			return nil, fmt.Errorf("no loopback agent named %q", host)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// a2aAgent is a real a2a-go server: its JSON-RPC handler at / and its card.
// The handler's context carries the HTTP request's headers as a2a-go's
// request meta (a2asrv.WithCallContext, a2a-go's hook for transports), so
// the executor reads the delegation MeshGuard minted for it.
func a2aAgent(t testing.TB, name string, exec a2asrv.AgentExecutor) *httptest.Server {
	t.Helper()
	rpc := a2asrv.NewJSONRPCHandler(a2asrv.NewHandler(exec))
	mux := http.NewServeMux()
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, _ := a2asrv.WithCallContext(r.Context(), a2asrv.NewRequestMeta(r.Header))
		rpc.ServeHTTP(w, r.WithContext(ctx))
	}))
	card := &a2a.AgentCard{Name: name, Description: "the " + name, Version: "1", ProtocolVersion: "0.3.0",
		PreferredTransport: a2a.TransportProtocolJSONRPC, DefaultInputModes: []string{"text/plain"}, DefaultOutputModes: []string{"text/plain"}}
	mux.Handle(a2asrv.WellKnownAgentCardPath, a2asrv.NewStaticAgentCardHandler(card))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// metaOf reads one header of the A2A request that started this execution.
func metaOf(ctx context.Context, name string) string {
	cc, ok := a2asrv.CallContextFrom(ctx)
	if !ok {
		return ""
	}
	v, _ := cc.RequestMeta().Get(name)
	if len(v) != 1 {
		return ""
	}
	return v[0]
}

// headers is an a2a-go client interceptor that sends fixed headers with
// every call (a2aclient.CallMeta becomes HTTP headers).
type headers map[string]string

func (h headers) Before(ctx context.Context, req *a2aclient.Request) (context.Context, error) {
	for k, v := range h {
		if v != "" {
			req.Meta[k] = []string{v}
		}
	}
	return ctx, nil
}

func (headers) After(context.Context, *a2aclient.Response) error { return nil }

// a2aClient is an a2a-go JSON-RPC client of the agent behind a gateway,
// authenticated with the caller's token and sending h with every call;
// seen, if set, keeps the last answer as the client received it.
func a2aClient(ctx context.Context, tr http.RoundTripper, gw, token string, h headers, seen *lastBody) (*a2aclient.Client, error) {
	hc := &http.Client{Transport: withToken{token, seen.wrap(tr)}}
	return a2aclient.NewFromEndpoints(ctx,
		[]a2a.AgentInterface{{URL: gw + gateway.Prefix + "/", Transport: a2a.TransportProtocolJSONRPC}},
		a2aclient.WithJSONRPCTransport(hc), a2aclient.WithInterceptors(h))
}

// lastBody keeps the body and status of the last response through it.
type lastBody struct {
	mu     sync.Mutex
	status int
	body   []byte
}

func (l *lastBody) wrap(next http.RoundTripper) http.RoundTripper {
	if l == nil {
		return next
	}
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		res, err := next.RoundTrip(r)
		if err != nil {
			return res, err
		}
		b, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(b))
		l.mu.Lock()
		l.status, l.body = res.StatusCode, b
		l.mu.Unlock()
		return res, err
	})
}

func (l *lastBody) get() (int, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status, l.body
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// writerExec answers every message with a draft.
type writerExec struct{}

func (writerExec) Execute(ctx context.Context, reqCtx *a2asrv.RequestContext, q eventqueue.Queue) error {
	return q.Write(ctx, a2a.NewMessage(a2a.MessageRoleAgent, a2a.TextPart{Text: "draft: " + text(reqCtx.Message)}))
}

func (writerExec) Cancel(context.Context, *a2asrv.RequestContext, eventqueue.Queue) error {
	return errors.New("nothing to cancel")
}

// plannerExec hands each message on to the writer through the writer's
// gateway, acting for its caller: it sends the delegation and the trace
// context it received. The task completes with the writer's answer.
type plannerExec struct {
	tr       http.RoundTripper
	writerGW string
	token    string
	got      chan hopHeaders // what each execution received
	runs     atomic.Int32    // executions started
	// dropTrace: the planner does not pass the trace context on, as an
	// agent without OpenTelemetry would not.
	dropTrace bool
}

// hopHeaders are the MeshGuard headers the planner's handler received.
type hopHeaders struct{ delegation, traceparent string }

func (p *plannerExec) Execute(ctx context.Context, reqCtx *a2asrv.RequestContext, q eventqueue.Queue) error {
	p.runs.Add(1)
	got := hopHeaders{metaOf(ctx, "X-MeshGuard-Delegation"), metaOf(ctx, "Traceparent")}
	p.got <- got
	send := headers{"X-MeshGuard-Delegation": got.delegation}
	if !p.dropTrace {
		send["Traceparent"] = got.traceparent
	}
	if err := q.Write(ctx, a2a.NewStatusUpdateEvent(reqCtx, a2a.TaskStateSubmitted, nil)); err != nil {
		return err
	}
	c, err := a2aClient(ctx, p.tr, p.writerGW, p.token, send, nil)
	if err != nil {
		return err
	}
	state, reply := a2a.TaskStateCompleted, ""
	res, err := c.SendMessage(ctx, &a2a.MessageSendParams{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: "write up: " + text(reqCtx.Message)})})
	switch m, ok := res.(*a2a.Message); {
	case err != nil:
		state, reply = a2a.TaskStateFailed, err.Error()
	case !ok:
		state, reply = a2a.TaskStateFailed, fmt.Sprintf("the writer answered %T", res)
	default:
		reply = text(m)
	}
	ev := a2a.NewStatusUpdateEvent(reqCtx, state, a2a.NewMessage(a2a.MessageRoleAgent, a2a.TextPart{Text: reply}))
	ev.Final = true
	return q.Write(ctx, ev)
}

func (*plannerExec) Cancel(context.Context, *a2asrv.RequestContext, eventqueue.Queue) error {
	return errors.New("nothing to cancel")
}

func text(m *a2a.Message) string {
	if m == nil {
		return ""
	}
	var b strings.Builder
	for _, p := range m.Parts {
		if tp, ok := p.(a2a.TextPart); ok {
			b.WriteString(tp.Text)
		}
	}
	return b.String()
}

// recordsOf are the fixture's audit records of an action, in order.
func recordsOf(t testing.TB, f *enginetest.Fixture, action string) []audit.Record {
	t.Helper()
	var out []audit.Record
	if err := f.Store.ScanAudit(context.Background(), func(r audit.Record) error {
		if r.Action == action {
			out = append(out, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// rpcDenial decodes a JSON-RPC error answer as MeshGuard sends it.
func rpcDenial(t testing.TB, status int, body []byte) (code int, reason, message string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    struct {
				Reason string `json:"reason"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == 0 {
		t.Fatalf("answer %d %s is not a JSON-RPC error (%v)", status, body, err)
	}
	return e.Error.Code, e.Error.Data.Reason, e.Error.Message
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func taskText(r a2a.SendMessageResult) string {
	if task, ok := r.(*a2a.Task); ok {
		return text(task.Status.Message)
	}
	return ""
}
