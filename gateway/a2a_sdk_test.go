package gateway_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"

	"github.com/meshguard/meshguard/agentproto"
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
