package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
)

// mailPolicy is the example: researchers may search, only to our
// domain may mail be sent, deleting is never allowed.
const mailPolicy = `
name: mail
rules:
  - {name: no-delete, effect: deny, actions: ["call:*/delete_*"], reason: nothing is deleted by agents}
  - name: outside-mail
    effect: deny
    actions: ["call:mail/send_email"]
    conditions: {context: {arguments.to: {not_matches: "*@ours.example"}}}
    reason: mail only to our domain
  - name: no-cc-outside
    effect: deny
    actions: ["call:mail/send_email"]
    conditions: {context: {arguments.options.cc: {exists: true, not_matches: "*@ours.example"}}}
  - name: small-searches
    effect: allow
    actions: ["call:papers/search_papers"]
    conditions: {context: {arguments.limit: {lte: 50}}}
  - {name: mail-tools, effect: allow, actions: ["call:mail/*", "list:*/*", "connect:*", "read:mail/*", "get:mail/prompts/*"]}
  - {name: planner, effect: allow, actions: ["send:planner", "task:planner/get", "connect:planner"]}
`

func mcpBody(method, params string) []byte {
	if params == "" {
		return []byte(`{"jsonrpc":"2.0","id":1,"method":"` + method + `"}`)
	}
	return []byte(`{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + params + `}`)
}

func callBody(tool, args string) []byte {
	return mcpBody("tools/call", `{"name":"`+tool+`","arguments":`+args+`}`)
}

// TestProtocolCallsAreDecidedOnTheBody: a route declaring MCP or A2A has
// its action read from the request (docs/mcp.md, docs/a2a.md), and a
// rule's arguments.* conditions read the body the upstream receives.
func TestProtocolCallsAreDecidedOnTheBody(t *testing.T) {
	f := enginetest.New(t, mailPolicy, enginetest.Options{Routes: []engine.Route{
		{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"},
		{Path: "/papers/mcp", Protocol: agentproto.MCP, Service: "papers"},
		{Host: "planner.mesh", Path: "*", Protocol: agentproto.A2A, Service: "planner"},
	}})
	_, tok := f.Agent(t, "researcher", 1, nil)
	v26 := func(h edge.MapHeaders) edge.MapHeaders {
		h["mcp-protocol-version"] = agentproto.HeaderRevision
		return h
	}
	tests := []struct {
		name   string
		r      engine.Request
		status int
		reason string
		action string
	}{
		{"a tool the policy allows", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("list_inbox", `{}`)}, 200, "rule_allow", "call:mail/list_inbox"},
		{"a tool the policy denies", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("delete_inbox", `{}`)}, 403, "rule_deny", "call:mail/delete_inbox"},
		{"an argument allowed", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("send_email", `{"to":"ann@ours.example","body":"hi"}`)}, 200, "rule_allow", "call:mail/send_email"},
		{"an argument refused", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("send_email", `{"to":"eve@evil.example"}`)}, 403, "rule_deny", "call:mail/send_email"},
		{"an absent argument: the deny rule holds", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("send_email", `{"body":"hi"}`)}, 403, "rule_deny", "call:mail/send_email"},
		{"a list of recipients, all ours", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("send_email", `{"to":["a@ours.example","b@ours.example"]}`)}, 200, "rule_allow", "call:mail/send_email"},
		{"a list with one outsider", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("send_email", `{"to":["a@ours.example","eve@evil.example"]}`)}, 403, "rule_deny", "call:mail/send_email"},
		{"a recipient that is an object", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("send_email", `{"to":{"addr":"a@ours.example"}}`)}, 403, "rule_deny", "call:mail/send_email"},
		{"a nested argument refused", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("send_email", `{"to":"a@ours.example","options":{"cc":"eve@evil.example"}}`)}, 403, "rule_deny", "call:mail/send_email"},
		{"a number under the bound", engine.Request{Method: "POST", Path: "/papers/mcp", Body: callBody("search_papers", `{"q":"x","limit":10}`)}, 200, "rule_allow", "call:papers/search_papers"},
		{"a number over the bound", engine.Request{Method: "POST", Path: "/papers/mcp", Body: callBody("search_papers", `{"q":"x","limit":500}`)}, 403, "no_matching_rule", "call:papers/search_papers"},
		{"a number as text", engine.Request{Method: "POST", Path: "/papers/mcp", Body: callBody("search_papers", `{"limit":"10"}`)}, 200, "rule_allow", "call:papers/search_papers"},
		{"tools/list", engine.Request{Method: "POST", Path: "/mcp", Body: mcpBody("tools/list", "")}, 200, "rule_allow", "list:mail/tools"},
		{"initialize", engine.Request{Method: "POST", Path: "/mcp", Body: mcpBody("initialize", `{"protocolVersion":"2025-11-25"}`)}, 200, "rule_allow", "connect:mail"},
		{"the server's stream", engine.Request{Method: "GET", Path: "/mcp"}, 200, "rule_allow", "connect:mail"},
		{"the end of a session", engine.Request{Method: "DELETE", Path: "/mcp", Headers: edge.MapHeaders{"mcp-session-id": "s-1"}}, 200, "rule_allow", "connect:mail"},
		{"a stream resumption, which would replay answers undecided", engine.Request{Method: "GET", Path: "/mcp", Headers: edge.MapHeaders{"last-event-id": "s_0"}}, 400, "bad_request", ""},
		{"a stream resumption with an empty Last-Event-ID", engine.Request{Method: "GET", Path: "/mcp", Headers: edge.MapHeaders{"last-event-id": ""}}, 400, "bad_request", ""},
		{"another HTTP method", engine.Request{Method: "PUT", Path: "/mcp", Body: callBody("list_inbox", `{}`)}, 400, "bad_request", ""},
		{"a batch", engine.Request{Method: "POST", Path: "/mcp", Body: []byte(`[` + string(callBody("list_inbox", `{}`)) + `]`)}, 400, "bad_request", ""},
		{"a duplicate name", engine.Request{Method: "POST", Path: "/mcp", Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_inbox","name":"delete_inbox"}}`)}, 400, "bad_request", ""},
		{"a name that is not a string", engine.Request{Method: "POST", Path: "/mcp", Body: mcpBody("tools/call", `{"name":7}`)}, 400, "bad_request", ""},
		{"an SSE body", engine.Request{Method: "POST", Path: "/mcp", Body: []byte("data: " + string(callBody("list_inbox", `{}`)) + "\n\n")}, 400, "bad_request", ""},
		{"a truncated body", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("list_inbox", `{}`)[:30]}, 400, "bad_request", ""},
		{"a body the adapter could not take whole", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("list_inbox", `{}`), BodyError: errors.New("the proxy sent a prefix")}, 400, "bad_request", ""},
		{"a body error on a route that reads no body", engine.Request{Method: "POST", Path: "/outbox", Body: callBody("list_inbox", `{}`), BodyError: errors.New("the proxy sent a prefix")}, 403, "no_matching_rule", "write:outbox"},
		{"a tool name over the action's bound", engine.Request{Method: "POST", Path: "/mcp", Body: callBody(strings.Repeat("t", engine.MaxActionLen), `{}`)}, 400, "bad_request", ""},
		{"headers agreeing with the body", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("list_inbox", `{}`),
			Headers: edge.MapHeaders{"mcp-method": "tools/call", "mcp-name": "list_inbox"}}, 200, "rule_allow", "call:mail/list_inbox"},
		{"a header that disagrees", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("delete_inbox", `{}`),
			Headers: edge.MapHeaders{"mcp-method": "tools/call", "mcp-name": "list_inbox"}}, 400, "mcp_header_mismatch", ""},
		{"no body, no headers", engine.Request{Method: "POST", Path: "/mcp"}, 400, "bad_request", ""},
		{"header-only: a list", engine.Request{Method: "POST", Path: "/mcp", Headers: v26(edge.MapHeaders{"mcp-method": "tools/list"})}, 200, "rule_allow", "list:mail/tools"},
		{"header-only: a tool no argument rule reads", engine.Request{Method: "POST", Path: "/mcp", Headers: v26(edge.MapHeaders{"mcp-method": "tools/call", "mcp-name": "list_inbox"})}, 200, "rule_allow", "call:mail/list_inbox"},
		{"header-only: a deny rule on arguments holds", engine.Request{Method: "POST", Path: "/mcp", Headers: v26(edge.MapHeaders{"mcp-method": "tools/call", "mcp-name": "send_email"})}, 403, "rule_deny", "call:mail/send_email"},
		{"header-only: an allow rule on arguments fails", engine.Request{Method: "POST", Path: "/papers/mcp", Headers: v26(edge.MapHeaders{"mcp-method": "tools/call", "mcp-name": "search_papers"})}, 403, "no_matching_rule", "call:papers/search_papers"},
		{"header-only: an older revision", engine.Request{Method: "POST", Path: "/mcp", Headers: edge.MapHeaders{"mcp-method": "tools/list", "mcp-protocol-version": "2025-11-25"}}, 400, "bad_request", ""},
		{"an A2A message", engine.Request{Method: "POST", Host: "planner.mesh", Path: "/", Body: mcpBody("message/send", `{"message":{"role":"user","parts":[],"messageId":"m1"}}`)}, 200, "rule_allow", "send:planner"},
		{"an A2A 1.0 task read", engine.Request{Method: "POST", Host: "planner.mesh", Path: "/", Body: mcpBody("GetTask", `{"id":"t-1"}`)}, 200, "rule_allow", "task:planner/get"},
		{"an A2A cancel", engine.Request{Method: "POST", Host: "planner.mesh", Path: "/", Body: mcpBody("tasks/cancel", `{"id":"t-1"}`)}, 403, "no_matching_rule", "task:planner/cancel"},
		{"the Agent Card", engine.Request{Method: "GET", Host: "planner.mesh", Path: "/.well-known/agent-card.json"}, 200, "rule_allow", "connect:planner"},
		{"the older Agent Card", engine.Request{Method: "GET", Host: "planner.mesh", Path: "/.well-known/agent.json"}, 200, "rule_allow", "connect:planner"},
		{"another GET to an A2A agent", engine.Request{Method: "GET", Host: "planner.mesh", Path: "/tasks/t-1"}, 400, "bad_request", ""},
		{"the proxy's route declares the protocol", engine.Request{Method: "POST", Path: "/elsewhere", RouteProtocol: agentproto.MCP, RouteService: "mail", Body: callBody("delete_x", `{}`)}, 403, "rule_deny", "call:mail/delete_x"},
		{"the proxy's action wins", engine.Request{Method: "POST", Path: "/mcp", RouteAction: "call:mail/list_inbox", Body: callBody("delete_x", `{}`)}, 200, "rule_allow", "call:mail/list_inbox"},
		{"a protocol the proxy names that MeshGuard does not speak", engine.Request{Method: "POST", Path: "/x", RouteProtocol: "grpc", RouteService: "mail", Body: callBody("list_inbox", `{}`)}, 400, "bad_request", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Token, tc.r.Source = tok, engine.SourceGateway
			d := check(t, f.Engine, tc.r)
			if d.Status != tc.status || d.Reason != tc.reason || tc.action != "" && d.Action != tc.action {
				t.Fatalf("got %d %s %q (%s), want %d %s %q", d.Status, d.Reason, d.Action, d.Message, tc.status, tc.reason, tc.action)
			}
			if (d.Status == 200) != d.Allowed {
				t.Fatalf("allowed %v with status %d", d.Allowed, d.Status)
			}
			var last audit.Record
			if err := f.Store.ScanAudit(context.Background(), func(r audit.Record) error { last = r; return nil }); err != nil {
				t.Fatal(err)
			}
			if last.DecisionID != d.ID || last.Status != d.Status || last.Action != d.Action {
				t.Fatalf("decision %s (%d %s) was not recorded: last record %+v", d.ID, d.Status, d.Action, last)
			}
		})
	}
}

// TestArgumentsInTheRecordedContext: the arguments a policy reads are in
// the decision's context (and so its audit record) under their keys, as
// sent; the rest of the arguments are not.
func TestArgumentsInTheRecordedContext(t *testing.T) {
	f := enginetest.New(t, mailPolicy, enginetest.Options{Routes: []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}})
	_, tok := f.Agent(t, "researcher", 1, nil)
	d := check(t, f.Engine, engine.Request{Source: engine.SourceGateway, Token: tok, Method: "POST", Path: "/mcp",
		Body: callBody("send_email", `{"to":"ann@ours.example","body":"secret","options":{"cc":"bob@ours.example"}}`)})
	want := map[string]any{"arguments.to": "ann@ours.example", "arguments.options.cc": "bob@ours.example"}
	if !d.Allowed || !reflect.DeepEqual(d.Context, want) {
		t.Fatalf("allowed %v (%s), context %v, want %v", d.Allowed, d.Message, d.Context, want)
	}
	if d.Call == nil || d.Call.Method != "tools/call" || d.Call.Name != "send_email" || d.Call.ID != "1" {
		t.Fatalf("call %+v", d.Call)
	}
}

// TestCooperativeArguments: at POST /v1/check, the caller's context's
// "arguments" object is read under arguments.*, as a tool call's.
func TestCooperativeArguments(t *testing.T) {
	f := enginetest.New(t, mailPolicy, enginetest.Options{})
	_, tok := f.Agent(t, "researcher", 1, nil)
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		ok   bool
	}{
		{"ours", map[string]any{"arguments": map[string]any{"to": "ann@ours.example"}}, true},
		{"outside", map[string]any{"arguments": map[string]any{"to": "eve@evil.example"}}, false},
		{"a flat key the caller sets wins", map[string]any{"arguments.to": "ann@ours.example", "arguments": map[string]any{"to": "eve@evil.example"}}, true},
		{"none", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, f.Engine, engine.Request{Source: engine.SourceAPI, Token: tok, Action: "call:mail/send_email", Resource: "/mcp", Context: tc.ctx})
			if d.Allowed != tc.ok {
				t.Fatalf("allowed %v (%s %s), want %v", d.Allowed, d.Reason, d.Message, tc.ok)
			}
		})
	}
}

// TestDenialsInJSONRPCForm: a denial of a JSON-RPC POST to a protocol
// route is a JSON-RPC error response to the request's id (null when it was
// not read), with the deny body as its data; other requests keep the
// plain deny body.
func TestDenialsInJSONRPCForm(t *testing.T) {
	f := enginetest.New(t, mailPolicy, enginetest.Options{Routes: []engine.Route{
		{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"},
		{Host: "planner.mesh", Path: "*", Protocol: agentproto.A2A, Service: "planner"},
	}})
	_, tok := f.Agent(t, "researcher", 1, nil)
	type rpc struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    struct {
				Reason     string `json:"reason"`
				DecisionID string `json:"decision_id"`
			} `json:"data"`
		} `json:"error"`
	}
	type plain struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}
	tests := []struct {
		name   string
		r      engine.Request
		id     string // "" for the plain body
		code   int
		reason string
	}{
		{"a denied tool, numeric id", engine.Request{Token: tok, Method: "POST", Path: "/mcp", Body: []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_all"}}`)}, "7", engine.RPCForbidden, "rule_deny"},
		{"a denied tool, string id", engine.Request{Token: tok, Method: "POST", Path: "/mcp", Body: []byte(`{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"delete_all"}}`)}, `"a-1"`, engine.RPCForbidden, "rule_deny"},
		{"a body not read: id null", engine.Request{Token: tok, Method: "POST", Path: "/mcp", Body: []byte(`[{"jsonrpc":"2.0","id":7,"method":"ping"}]`)}, "null", engine.RPCInvalidRequest, "bad_request"},
		{"a header mismatch", engine.Request{Token: tok, Method: "POST", Path: "/mcp", Body: callBody("delete_x", `{}`), Headers: edge.MapHeaders{"mcp-method": "tools/list"}}, "null", engine.RPCInvalidRequest, "mcp_header_mismatch"},
		{"no token", engine.Request{Method: "POST", Path: "/mcp", Body: callBody("list_inbox", `{}`)}, "null", engine.RPCUnauthorized, "unauthorized"},
		{"an A2A message", engine.Request{Token: tok, Method: "POST", Host: "planner.mesh", Path: "/", Body: []byte(`{"jsonrpc":"2.0","id":3,"method":"tasks/cancel","params":{"id":"t"}}`)}, "3", engine.RPCForbidden, "no_matching_rule"},
		{"a GET: the plain body", engine.Request{Token: tok, Method: "GET", Host: "planner.mesh", Path: "/tasks"}, "", 0, "bad_request"},
		{"another route: the plain body", engine.Request{Token: tok, Method: "POST", Path: "/other", Body: callBody("x", `{}`)}, "", 0, "no_matching_rule"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Source = engine.SourceGateway
			d := check(t, f.Engine, tc.r)
			if d.Allowed {
				t.Fatalf("allowed: %+v", d)
			}
			if tc.id == "" {
				var got plain
				if err := json.Unmarshal(d.DenyBody(), &got); err != nil || got.Error == "" || got.Reason != tc.reason {
					t.Fatalf("body %s (%v), want the plain deny body with reason %s", d.DenyBody(), err, tc.reason)
				}
				return
			}
			var got rpc
			if err := json.Unmarshal(d.DenyBody(), &got); err != nil {
				t.Fatalf("%s: %v", d.DenyBody(), err)
			}
			if got.JSONRPC != "2.0" || string(got.ID) != tc.id || got.Error == nil || got.Error.Code != tc.code ||
				got.Error.Data.Reason != tc.reason || got.Error.Message != d.Message || got.Error.Data.DecisionID != d.ID {
				t.Fatalf("body %s, want a JSON-RPC error to id %s, code %d, reason %s", d.DenyBody(), tc.id, tc.code, tc.reason)
			}
		})
	}
}

// TestPermitsListsWhatTheCallerMayCall: an allowed tools/list decision
// says which tools its caller may call — a tool allowed for some arguments
// is listed, a denied one is not — and no other decision permits anything.
func TestPermitsListsWhatTheCallerMayCall(t *testing.T) {
	f := enginetest.New(t, mailPolicy, enginetest.Options{Routes: []engine.Route{
		{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"},
		{Path: "/papers/mcp", Protocol: agentproto.MCP, Service: "papers"},
	}})
	_, tok := f.Agent(t, "researcher", 1, nil)
	list := func(path string) engine.Decision {
		return check(t, f.Engine, engine.Request{Source: engine.SourceGateway, Token: tok, Method: "POST", Path: path, Body: mcpBody("tools/list", "")})
	}
	mail, papers := list("/mcp"), list("/papers/mcp")
	for _, tc := range []struct {
		d      engine.Decision
		tool   string
		listed bool
	}{
		{mail, "list_inbox", true},
		{mail, "send_email", true}, // allowed to our domain
		{mail, "delete_inbox", false},
		{papers, "search_papers", true}, // allowed for small searches
		{papers, "delete_paper", false},
		{papers, "summarize", false}, // no rule
	} {
		action := tc.d.Call.ListedAction(tc.tool)
		if got := tc.d.Permits(action); got != tc.listed {
			t.Errorf("%s: Permits(%s) = %v, want %v", tc.d.Call.Service, action, got, tc.listed)
		}
	}
	call := check(t, f.Engine, engine.Request{Source: engine.SourceGateway, Token: tok, Method: "POST", Path: "/mcp", Body: callBody("list_inbox", `{}`)})
	if !call.Allowed || call.Permits("call:mail/list_inbox") {
		t.Errorf("a tool call's decision permits listing: %+v", call)
	}
	if got := mail.Call.ListedAction("x"); got != "call:mail/x" {
		t.Errorf("ListedAction = %q", got)
	}
}

// TestWantsBodyAsResolveMatches: an enforcement point reads the body of
// exactly the requests whose action the engine will read from it, however
// the path is spelt.
func TestWantsBodyAsResolveMatches(t *testing.T) {
	f := enginetest.New(t, mailPolicy, enginetest.Options{Routes: []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}})
	for _, tc := range []struct {
		r    engine.Request
		want bool
	}{
		{engine.Request{Method: "POST", Path: "/mcp"}, true},
		{engine.Request{Method: "POST", Path: "/m%63p?x=1"}, true},
		{engine.Request{Method: "POST", Path: "/mcp", RouteAction: "call:mail/x"}, false},
		{engine.Request{Method: "POST", Path: "/other", RouteProtocol: agentproto.MCP, RouteService: "mail"}, true},
		{engine.Request{Method: "GET", Path: "/mcp"}, false},
		{engine.Request{Method: "POST", Path: "/other"}, false},
		{engine.Request{Method: "POST", Path: "/mcp", Source: engine.SourceAPI}, false},
	} {
		if got := f.Engine.WantsBody(&tc.r); got != tc.want {
			t.Errorf("WantsBody(%s %s) = %v, want %v", tc.r.Method, tc.r.Path, got, tc.want)
		}
	}
}
