package engine_test

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestProtocolCallSpans: the check span of an agent-protocol call says what
// was called, with OpenTelemetry's GenAI, MCP and A2A attributes, and never
// carries an argument's value.
func TestProtocolCallSpans(t *testing.T) {
	routes := []engine.Route{
		{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"},
		{Host: "planner.mesh", Path: "*", Protocol: agentproto.A2A, Service: "planner"},
	}
	f := enginetest.New(t, mailPolicy, enginetest.Options{Routes: routes})
	_, tok := f.Agent(t, "researcher", 1, nil)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer, Agents: f.Agents,
		Policies: f.Policies, Limiter: f.Limiter, Recorder: f.Audit, Routes: routes, Tracer: tp.Tracer("test")})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "the-secret-plan"
	tests := []struct {
		name   string
		r      engine.Request
		want   map[string]string
		absent []string
	}{
		{"a tool call", engine.Request{Method: "POST", Path: "/mcp", Headers: edge.MapHeaders{"mcp-session-id": "sess-9"},
			Body: callBody("send_email", `{"to":"ann@ours.example","body":"`+secret+`"}`)},
			map[string]string{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "send_email", "mcp.method.name": "tools/call",
				"mcp.session.id": "sess-9", "jsonrpc.request.id": "1", "meshguard.action": "call:mail/send_email"},
			[]string{"a2a.method.name"}},
		{"a denied tool call, string id", engine.Request{Method: "POST", Path: "/mcp",
			Body: []byte(`{"jsonrpc":"2.0","id":"req-1","method":"tools/call","params":{"name":"delete_inbox"}}`)},
			map[string]string{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "delete_inbox", "mcp.method.name": "tools/call",
				"jsonrpc.request.id": "req-1", "meshguard.decision": "deny"},
			[]string{"mcp.session.id"}},
		{"a list", engine.Request{Method: "POST", Path: "/mcp", Body: mcpBody("tools/list", "")},
			map[string]string{"mcp.method.name": "tools/list", "jsonrpc.request.id": "1"},
			[]string{"gen_ai.tool.name", "gen_ai.operation.name"}},
		{"a resource read", engine.Request{Method: "POST", Path: "/mcp", Body: mcpBody("resources/read", `{"uri":"mail://inbox/1"}`)},
			map[string]string{"mcp.method.name": "resources/read", "mcp.resource.uri": "mail://inbox/1"},
			[]string{"gen_ai.tool.name"}},
		{"an A2A message", engine.Request{Method: "POST", Host: "planner.mesh", Path: "/",
			Body: mcpBody("message/send", `{"message":{"role":"user","parts":[{"kind":"text","text":"`+secret+`"}],"messageId":"m1","taskId":"t-1","contextId":"c-1"}}`)},
			map[string]string{"a2a.method.name": "message/send", "a2a.task.id": "t-1", "a2a.context.id": "c-1", "jsonrpc.request.id": "1"},
			[]string{"mcp.method.name", "gen_ai.tool.name"}},
		{"a plain request has none", engine.Request{Method: "GET", Path: "/other"},
			map[string]string{},
			[]string{"mcp.method.name", "a2a.method.name", "jsonrpc.request.id", "gen_ai.tool.name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Token, tc.r.Source = tok, engine.SourceGateway
			d := check(t, e, tc.r)
			span := spanNamed(t, rec, engine.SpanCheck)
			got := attrs(span)
			if got["meshguard.decision_id"] != d.ID {
				t.Fatalf("the last check span is not decision %s's", d.ID)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := got[k]; ok {
					t.Errorf("%s set to %q", k, got[k])
				}
			}
			for k, v := range got {
				if strings.Contains(v, secret) || strings.Contains(v, "ann@ours.example") {
					t.Errorf("%s carries an argument's value: %q", k, v)
				}
			}
		})
	}
}
