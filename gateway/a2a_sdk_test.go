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
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/a2aproject/a2a-go/a2asrv/eventqueue"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// a2aPolicies: the orchestrator may message the planner and the writer,
// read their tasks and cards, and hand tasks on two hops, within a ceiling
// of messages and cards; the planner may message the writer and manage the
// writer's tasks. (A delegating agent must itself be allowed what its
// delegate does: docs/policies.md, delegation_member_denied.) An outsider
// is covered by no policy.
const a2aPolicies = `
name: orchestrators
appliesTo: {tags: [orchestrator]}
rules:
  - {name: plan, effect: allow, actions: ["send:planner", "task:planner/get", "connect:planner"]}
  - {name: write, effect: allow, actions: ["send:writer", "task:writer/get", "connect:writer"]}
delegation: {maxDepth: 2, permissionCeiling: ["send:*", "connect:*"]}
---
name: planners
appliesTo: {tags: [planner]}
rules:
  - {name: write, effect: allow, actions: ["send:writer", "task:writer/*", "connect:writer"]}
delegation: {maxDepth: 1}
`

// Agent hosts carry no port: each agent has a name of its own, which the
// gateways' transport dials on loopback.
const (
	plannerHost = "planner.agents.test"
	writerHost  = "writer.agents.test"
)

var a2aRoutes = []engine.Route{
	{Host: plannerHost, Path: "/*", Protocol: agentproto.A2A, Service: "planner"},
	{Host: writerHost, Path: "/*", Protocol: agentproto.A2A, Service: "writer"},
}

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

// a2aMesh is an orchestrator, a planner and a writer, the last two real
// a2a-go servers, each behind a gateway of its own (as a sidecar would be).
type a2aMesh struct {
	f                    *enginetest.Fixture
	planner              *plannerExec
	plannerGW, writerGW  string
	tr                   http.RoundTripper
	orchID, planID, wrID string
	orchT, planT, outT   string
}

func newA2AMesh(t *testing.T) *a2aMesh {
	t.Helper()
	f := enginetest.New(t, a2aPolicies, enginetest.Options{Routes: a2aRoutes})
	orch, orchT := f.Agent(t, "orchestrator", trust.Trusted, []string{"orchestrator"})
	plan, planT := f.Agent(t, "planner", trust.Verified, []string{"planner"}, plannerHost)
	wr, _ := f.Agent(t, "writer", trust.Verified, []string{"writer"}, writerHost)
	_, outT := f.Agent(t, "outsider", trust.Verified, []string{"outsider"})

	writer := a2aAgent(t, "writer", writerExec{})
	planner := &plannerExec{got: make(chan hopHeaders, 4), token: planT}
	plannerSrv := a2aAgent(t, "planner", planner)
	dial := loopbackDialer{plannerHost: plannerSrv.Listener.Addr().String(), writerHost: writer.Listener.Addr().String()}
	gwTransport := dial.transport(t)
	target := func(host string, srv *httptest.Server) gateway.Config {
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		return gateway.Config{Checker: f.Engine, Target: mustURL(t, "http://"+host+":"+port), Transport: gwTransport}
	}
	m := &a2aMesh{f: f, planner: planner, orchID: orch.ID, planID: plan.ID, wrID: wr.ID, orchT: orchT, planT: planT, outT: outT}
	m.plannerGW = startGateway(t, target(plannerHost, plannerSrv))
	m.writerGW = startGateway(t, target(writerHost, writer))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	m.tr, planner.tr, planner.writerGW = tr, tr, m.writerGW
	return m
}

func (m *a2aMesh) client(t *testing.T, gw, token string, h headers, seen *lastBody) *a2aclient.Client {
	t.Helper()
	c, err := a2aClient(t.Context(), m.tr, gw, token, h, seen)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestA2ADelegationChainThroughGateways: an orchestrator's a2a-go client
// messages the planner through the planner's gateway; the planner's
// a2a-go server receives the delegation MeshGuard minted for it and,
// acting for the orchestrator, messages the writer through the writer's
// gateway with it. Both hops are allowed, decided as send:planner and
// send:writer, and recorded as one chain, orchestrator → planner → writer,
// in one trace — whether the planner passes the trace context on or drops
// it (then the delegation token carries it: docs/tracing.md); the task is
// then read back as task:planner/get.
func TestA2ADelegationChainThroughGateways(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dropTrace bool
	}{{"the planner passes the trace context on", false}, {"the planner drops the trace context", true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newA2AMesh(t)
			m.planner.dropTrace = tc.dropTrace
			ctx := t.Context()
			orch := m.client(t, m.plannerGW, m.orchT, nil, nil)

			res, err := orch.SendMessage(ctx, &a2a.MessageSendParams{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: "the quarterly report"})})
			if err != nil {
				t.Fatalf("orchestrator → planner: %v", err)
			}
			task, ok := res.(*a2a.Task)
			if !ok || task.Status.State != a2a.TaskStateCompleted || text(task.Status.Message) != "draft: write up: the quarterly report" {
				t.Fatalf("orchestrator → planner → writer answered %#v (%q)", res, taskText(res))
			}
			got := <-m.planner.got
			if got.delegation == "" {
				t.Fatal("the planner's a2a-go handler received no X-MeshGuard-Delegation")
			}

			toPlanner, toWriter := recordsOf(t, m.f, "send:planner"), recordsOf(t, m.f, "send:writer")
			if len(toPlanner) != 1 || len(toWriter) != 1 {
				t.Fatalf("recorded %d send:planner and %d send:writer, want one each", len(toPlanner), len(toWriter))
			}
			hop1, hop2 := toPlanner[0], toWriter[0]
			if hop1.Decision != "allow" || hop1.AgentID != m.orchID || !equal(hop1.Chain, m.orchID) || hop1.Rule != "plan" {
				t.Errorf("orchestrator → planner recorded %s by %s chain %v rule %q", hop1.Decision, hop1.AgentName, hop1.Chain, hop1.Rule)
			}
			if hop2.Decision != "allow" || hop2.AgentID != m.planID || !equal(hop2.Chain, m.orchID, m.planID) || hop2.DelegationDepth != 1 || hop2.Rule != "write" {
				t.Errorf("planner → writer recorded %s by %s chain %v depth %d rule %q, want allow by planner for the orchestrator",
					hop2.Decision, hop2.AgentName, hop2.Chain, hop2.DelegationDepth, hop2.Rule)
			}
			if !strings.Contains(got.traceparent, "-"+hop1.TraceID+"-") {
				t.Errorf("the planner received traceparent %q, want one in the trace %q MeshGuard started", got.traceparent, hop1.TraceID)
			}
			if hop1.TraceID == "" || hop2.TraceID != hop1.TraceID {
				t.Errorf("the hops are in traces %q and %q, want one", hop1.TraceID, hop2.TraceID)
			}

			// The task, read back: task:planner/get.
			back, err := orch.GetTask(ctx, &a2a.TaskQueryParams{ID: task.ID})
			if err != nil || back.ID != task.ID || back.Status.State != a2a.TaskStateCompleted {
				t.Fatalf("GetTask(%s) through the gateway = %v, %v", task.ID, back, err)
			}
			if recs := recordsOf(t, m.f, "task:planner/get"); len(recs) != 1 || recs[0].Decision != "allow" || recs[0].Rule != "plan" {
				t.Errorf("task:planner/get recorded %+v", recs)
			}
		})
	}
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

// TestA2ADenialsThroughGateways: what an a2a-go client sees of a denied
// message, a hop refused by the orchestrator's ceiling, and an Agent Card
// read by a2a-go's resolver, allowed and denied. Each decision is recorded.
//
// a2a-go's JSON-RPC client (v0.3.3, and its current releases) reads a
// JSON-RPC answer only from an HTTP 200: a denial (403 with MeshGuard's
// JSON-RPC error body, docs/mcp.md "Denials") reaches the caller as
// "unexpected HTTP status: 403 Forbidden"; the reason is in the body and
// the audit trail, and the message never reaches the agent.
func TestA2ADenialsThroughGateways(t *testing.T) {
	m := newA2AMesh(t)
	ctx := t.Context()
	msg := func(s string) *a2a.MessageSendParams {
		return &a2a.MessageSendParams{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: s})}
	}

	t.Run("a message from an agent no policy covers", func(t *testing.T) {
		var seen lastBody
		out := m.client(t, m.plannerGW, m.outT, nil, &seen)
		_, err := out.SendMessage(ctx, msg("let me in"))
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("outsider → planner: %v, want a2a-go's error for a 403", err)
		}
		// The gateway answered itself: a request it forwarded would have
		// reached the planner before this answer.
		if n := m.planner.runs.Load(); n != 0 {
			t.Fatalf("the denied message reached the planner (%d executions)", n)
		}
		status, body := seen.get()
		if code, reason, _ := rpcDenial(t, status, body); status != http.StatusForbidden || code != engine.RPCForbidden || reason != "no_policy" {
			t.Errorf("the client received %d, JSON-RPC code %d, reason %q; want 403, %d, no_policy", status, code, reason, engine.RPCForbidden)
		}
		if recs := recordsOf(t, m.f, "send:planner"); len(recs) != 1 || recs[0].Decision != "deny" || recs[0].Reason != "no_policy" || recs[0].Status != 403 {
			t.Errorf("send:planner recorded %+v, want one denial for no_policy", recs)
		}
	})

	t.Run("a hop outside the orchestrator's ceiling", func(t *testing.T) {
		orch := m.client(t, m.plannerGW, m.orchT, nil, nil)
		res, err := orch.SendMessage(ctx, msg("the report"))
		if err != nil || taskText(res) != "draft: write up: the report" {
			t.Fatalf("orchestrator → planner → writer: %v, %v (%q)", res, err, taskText(res))
		}
		delegation := (<-m.planner.got).delegation
		// The planner, acting for the orchestrator, reads a task of the
		// writer's: it may itself, the orchestrator may itself, but the
		// orchestrator's ceiling hands on messages and cards only.
		var seen lastBody
		pl := m.client(t, m.writerGW, m.planT, headers{"X-MeshGuard-Delegation": delegation}, &seen)
		_, err = pl.GetTask(ctx, &a2a.TaskQueryParams{ID: "any-task"})
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("planner (for the orchestrator) → tasks/get on the writer: %v, want a2a-go's error for a 403", err)
		}
		status, body := seen.get()
		if code, reason, _ := rpcDenial(t, status, body); code != engine.RPCForbidden || reason != "delegation_ceiling" {
			t.Errorf("the client received %d, JSON-RPC code %d, reason %q; want %d, delegation_ceiling", status, code, reason, engine.RPCForbidden)
		}
		recs := recordsOf(t, m.f, "task:writer/get")
		if len(recs) != 1 || recs[0].Decision != "deny" || recs[0].Reason != "delegation_ceiling" || !equal(recs[0].Chain, m.orchID, m.planID) {
			t.Errorf("task:writer/get recorded %+v, want one denial for delegation_ceiling in the chain orchestrator → planner", recs)
		}
		// Without the delegation, the planner acts for itself: allowed,
		// and the writer's a2a-go server answers that it has no such task.
		alone := m.client(t, m.writerGW, m.planT, nil, nil)
		if _, err := alone.GetTask(ctx, &a2a.TaskQueryParams{ID: "any-task"}); !errors.Is(err, a2a.ErrTaskNotFound) {
			t.Errorf("planner → tasks/get on the writer: %v, want the writer's own %v", err, a2a.ErrTaskNotFound)
		}
	})

	t.Run("the Agent Card", func(t *testing.T) {
		for _, tc := range []struct {
			name, token string
			status      int
		}{{"allowed as connect:planner", m.orchT, 200}, {"denied to an outsider", m.outT, 403}} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(recordsOf(t, m.f, "connect:planner"))
				tr := &http.Transport{}
				t.Cleanup(tr.CloseIdleConnections)
				r := agentcard.NewResolver(&http.Client{Transport: withToken{tc.token, tr}})
				card, err := r.Resolve(ctx, m.plannerGW+gateway.Prefix)
				var notOK *agentcard.ErrStatusNotOK
				switch {
				case tc.status == 200 && (err != nil || card.Name != "planner"):
					t.Fatalf("Resolve through the gateway: %v, %v", card, err)
				case tc.status != 200 && (!errors.As(err, &notOK) || notOK.StatusCode != tc.status):
					t.Fatalf("Resolve through the gateway: %v, %v; want a2a-go's ErrStatusNotOK %d", card, err, tc.status)
				}
				recs := recordsOf(t, m.f, "connect:planner")
				if len(recs) != before+1 || recs[before].Status != tc.status || recs[before].Method != "GET" {
					t.Errorf("connect:planner recorded %+v, want one more with status %d", recs[before:], tc.status)
				}
			})
		}
	})
}
