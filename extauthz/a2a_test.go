package extauthz

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/a2aproject/a2a-go/a2asrv/eventqueue"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/trust"
)

// agentsPolicy: the orchestrator messages the planner and hands tasks on;
// the planner messages the writer. An outsider is covered by no policy.
const agentsPolicy = `
name: orchestrators
appliesTo: {tags: [orchestrator]}
rules:
  - {name: plan, effect: allow, actions: ["send:planner", "send:writer", "connect:planner"]}
delegation: {maxDepth: 2, permissionCeiling: ["send:*", "connect:*"]}
---
name: planners
appliesTo: {tags: [planner]}
rules:
  - {name: write, effect: allow, actions: ["send:writer"]}
delegation: {maxDepth: 1}
`

// a2aServer is a real a2a-go server whose executor sees the HTTP headers
// as a2a-go's request meta (a2asrv.WithCallContext, its hook for
// transports).
func a2aServer(t *testing.T, name string, exec a2asrv.AgentExecutor) *httptest.Server {
	t.Helper()
	rpc := a2asrv.NewJSONRPCHandler(a2asrv.NewHandler(exec))
	mux := http.NewServeMux()
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, _ := a2asrv.WithCallContext(r.Context(), a2asrv.NewRequestMeta(r.Header))
		rpc.ServeHTTP(w, r.WithContext(ctx))
	}))
	mux.Handle(a2asrv.WellKnownAgentCardPath, a2asrv.NewStaticAgentCardHandler(&a2a.AgentCard{
		Name: name, Version: "1", ProtocolVersion: "0.3.0", PreferredTransport: a2a.TransportProtocolJSONRPC}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// execFunc is an a2a-go AgentExecutor that answers with one message.
type execFunc func(ctx context.Context, in string) string

func (f execFunc) Execute(ctx context.Context, reqCtx *a2asrv.RequestContext, q eventqueue.Queue) error {
	var in string
	for _, p := range reqCtx.Message.Parts {
		if tp, ok := p.(a2a.TextPart); ok {
			in += tp.Text
		}
	}
	return q.Write(ctx, a2a.NewMessage(a2a.MessageRoleAgent, a2a.TextPart{Text: f(ctx, in)}))
}

func (execFunc) Cancel(context.Context, *a2asrv.RequestContext, eventqueue.Queue) error {
	return errors.New("nothing to cancel")
}

// sendText sends one message with an a2a-go JSON-RPC client through rt to
// the agent at url, with extra headers, and returns the answer's text.
func sendText(ctx context.Context, rt http.RoundTripper, url, s string, extra map[string]string) (string, error) {
	c, err := a2aclient.NewFromEndpoints(ctx, []a2a.AgentInterface{{URL: url, Transport: a2a.TransportProtocolJSONRPC}},
		a2aclient.WithJSONRPCTransport(&http.Client{Transport: rt}), a2aclient.WithInterceptors(metaHeaders(extra)))
	if err != nil {
		return "", err
	}
	res, err := c.SendMessage(ctx, &a2a.MessageSendParams{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: s})})
	if err != nil {
		return "", err
	}
	m, ok := res.(*a2a.Message)
	if !ok || len(m.Parts) != 1 {
		return "", errors.New("not a one-part message")
	}
	tp, _ := m.Parts[0].(a2a.TextPart)
	return tp.Text, nil
}

// metaHeaders is an a2a-go client interceptor sending fixed headers.
type metaHeaders map[string]string

func (h metaHeaders) Before(ctx context.Context, req *a2aclient.Request) (context.Context, error) {
	for k, v := range h {
		if v != "" {
			req.Meta[k] = []string{v}
		}
	}
	return ctx, nil
}

func (metaHeaders) After(context.Context, *a2aclient.Response) error { return nil }

// records are the audit trail's records of action.
func records(t *testing.T, f *enginetest.Fixture, action string) []audit.Record {
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

// TestA2ASDKThroughExtAuthz: a2a-go clients and servers behind Envoys
// whose ext_authz is MeshGuard's real gRPC server, the routes carrying
// meshguard.protocol: a2a as MeshGuard's xDS sets them. The orchestrator's
// message to the planner is a hand-on (the :authority is the planner's
// host): allowed as send:planner, and the planner's handler receives the
// delegation Envoy set from the OkHttpResponse; acting for the
// orchestrator it messages the writer, recorded in the chain orchestrator
// → planner. An outsider's message and card request are denied before the
// planner; the card is connect:planner.
func TestA2ASDKThroughExtAuthz(t *testing.T) {
	f := enginetest.New(t, agentsPolicy, enginetest.Options{Answer: engine.AnswerAll})
	orch, orchT := f.Agent(t, "orchestrator", trust.Trusted, []string{"orchestrator"})
	plan, planT := f.Agent(t, "planner", trust.Verified, []string{"planner"}, "planner.agents.test")
	_, _ = f.Agent(t, "writer", trust.Verified, []string{"writer"}, "writer.agents.test")
	_, outT := f.Agent(t, "outsider", trust.Verified, []string{"outsider"})
	authz := startGRPC(t, f.Engine, testLog(t, nil))
	defer http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	writer := a2aServer(t, "writer", execFunc(func(_ context.Context, in string) string { return "draft: " + in }))
	toWriter := &envoyStandIn{authz: authz, upstream: writer.URL, ext: map[string]string{ContextExtensionProtocol: "a2a", ContextExtensionService: "writer"}}
	delegations := make(chan string, 2)
	planner := a2aServer(t, "planner", execFunc(func(ctx context.Context, in string) string {
		cc, _ := a2asrv.CallContextFrom(ctx)
		d, _ := cc.RequestMeta().Get("X-MeshGuard-Delegation")
		delegations <- strings.Join(d, ",")
		out, err := sendText(ctx, bearer{planT, toWriter}, "http://writer.agents.test/", "write up: "+in,
			map[string]string{"X-MeshGuard-Delegation": strings.Join(d, ",")})
		if err != nil {
			return "the writer refused: " + err.Error()
		}
		return out
	}))
	toPlanner := &envoyStandIn{authz: authz, upstream: planner.URL, ext: map[string]string{ContextExtensionProtocol: "a2a", ContextExtensionService: "planner"}}
	ctx := t.Context()

	got, err := sendText(ctx, bearer{orchT, toPlanner}, "http://planner.agents.test/", "the report", nil)
	if err != nil || got != "draft: write up: the report" {
		t.Fatalf("orchestrator → planner → writer: %q, %v", got, err)
	}
	if d := <-delegations; d == "" {
		t.Error("the planner's handler received no X-MeshGuard-Delegation")
	}
	hop1, hop2 := records(t, f, "send:planner"), records(t, f, "send:writer")
	if len(hop1) != 1 || hop1[0].Status != 200 || hop1[0].Source != "ext_authz-grpc" {
		t.Errorf("send:planner recorded %+v", hop1)
	}
	if len(hop2) != 1 || hop2[0].Status != 200 || len(hop2[0].Chain) != 2 || hop2[0].Chain[0] != orch.ID || hop2[0].Chain[1] != plan.ID ||
		len(hop1) != 1 || hop2[0].TraceID != hop1[0].TraceID {
		t.Errorf("send:writer recorded %+v, want allowed in the chain orchestrator → planner, in the first hop's trace", hop2)
	}

	// An outsider: denied before the planner, read by a2a-go as a 403.
	if _, err := sendText(ctx, bearer{outT, toPlanner}, "http://planner.agents.test/", "let me in", nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("outsider → planner: %v, want a2a-go's error for a 403", err)
	}
	if !strings.Contains(toPlanner.lastDenied(), `"reason":"no_policy"`) || !strings.Contains(toPlanner.lastDenied(), `"jsonrpc":"2.0"`) {
		t.Errorf("the denial Envoy answered: %s, want a JSON-RPC error for no_policy", toPlanner.lastDenied())
	}
	if recs := records(t, f, "send:planner"); len(recs) != 2 || recs[1].Status != 403 {
		t.Errorf("send:planner recorded %+v, want the outsider's denial", recs)
	}

	// The Agent Card, through a2a-go's resolver.
	for _, tc := range []struct {
		name, token string
		status      int
	}{{"the card for the orchestrator", orchT, 200}, {"the card for an outsider", outT, 403}} {
		card, err := agentcard.NewResolver(&http.Client{Transport: bearer{tc.token, toPlanner}}).Resolve(ctx, "http://planner.agents.test")
		var notOK *agentcard.ErrStatusNotOK
		if tc.status == 200 && (err != nil || card.Name != "planner") || tc.status != 200 && (!errors.As(err, &notOK) || notOK.StatusCode != tc.status) {
			t.Errorf("%s: %v, %v; want %d", tc.name, card, err, tc.status)
		}
		if recs := records(t, f, "connect:planner"); len(recs) == 0 || recs[len(recs)-1].Status != tc.status {
			t.Errorf("%s: connect:planner recorded %+v, want status %d last", tc.name, recs, tc.status)
		}
	}
	select {
	case d := <-delegations:
		t.Errorf("a denied request reached the planner (delegation %q)", d)
	default: // every denial above was answered by Envoy: nothing was forwarded
	}
}
