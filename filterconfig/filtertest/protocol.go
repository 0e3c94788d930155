package filtertest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/extauthz"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/trust"
)

// ToolPolicies are the policies of the MCP and A2A cases, added to
// enginetest.MeshPolicies for an agent of their own (tag toolsmith), so
// the mesh's decisions do not change: searches of at most 50 papers,
// nothing deleted, exports only with a person's approval (which MeshGuard
// holds, so the filter defers), lists and sessions, and messages to the planner agent
// (a delegation hop, which MeshGuard mints).
const ToolPolicies = `
name: tool-users
appliesTo: {tags: [toolsmith]}
rules:
  - {name: no-delete, effect: deny, actions: ["call:papers/delete_*"], reason: nothing is deleted by agents}
  - name: small-searches
    effect: deny
    actions: ["call:papers/search_papers"]
    conditions: {context: {arguments.limit: {gt: 50}}}
    reason: a search returns at most 50 papers
  - {name: ask-before-export, effect: approve, actions: ["call:papers/export_papers"], approvers: [librarians]}
  - {name: tools, effect: allow, actions: ["call:papers/search_papers", "list:papers/*", "connect:papers", "send:planner", "connect:planner"]}
delegation: {maxDepth: 1}
`

// addToolPolicies adds ToolPolicies to the fixture's policy file, reloads
// it, and makes the agents of the protocol cases.
func (e *Env) addToolPolicies(t testing.TB) {
	t.Helper()
	file := filepath.Join(e.F.Dir, "policies.yaml")
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n---\n" + ToolPolicies)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.F.Policies.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.Tool, e.ToolT = e.F.Agent(t, "toolsmith", trust.Verified, []string{"toolsmith"})
	e.Planner, e.PlannerT = e.F.Agent(t, "planner", trust.Verified, nil, "planner.mesh")
}

// ProtocolCase is a request to a route declaring an agent protocol: a
// Case with the body the decision is made on, and the action the engine
// reads from it ("" when it is refused before one is read).
type ProtocolCase struct {
	Case
	Body   []byte
	Action string
}

// HasBody says the request has a body, sent after its headers.
func (c *ProtocolCase) HasBody() bool { return c.Body != nil }

func rpc(method, params string) []byte {
	return []byte(`{"jsonrpc":"2.0","id":7,"method":"` + method + `","params":` + params + `}`)
}

func toolCall(tool, args string) []byte {
	return rpc("tools/call", `{"name":"`+tool+`","arguments":`+args+`}`)
}

// Oversized is a tools/call body one byte over agentproto.MaxBody, valid
// JSON but for its size.
func Oversized() []byte {
	head := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_papers","arguments":{"query":"`
	tail := `"}}}`
	return []byte(head + strings.Repeat("a", agentproto.MaxBody+1-len(head)-len(tail)) + tail)
}

// ProtocolCases is the MCP and A2A table (docs/mcp.md, docs/a2a.md), the
// same for MeshGuard's engine and the filter's.
func (e *Env) ProtocolCases() []ProtocolCase {
	tool := [][2]string{bearer(e.ToolT), {"content-type", "application/json"}}
	with := func(h ...[2]string) [][2]string { return append(append([][2]string{}, tool...), h...) }
	mcp := func(name string, hdrs [][2]string, body []byte, status int, reason, action string) ProtocolCase {
		return ProtocolCase{Case{name, "POST", "papers.mesh", "/mcp", hdrs, status, reason, false}, body, action}
	}
	a2a := func(name, method, path string, body []byte, status int, reason, action string, deferred bool) ProtocolCase {
		return ProtocolCase{Case{name, method, "planner.mesh", path, tool, status, reason, deferred}, body, action}
	}
	return []ProtocolCase{
		mcp("MCP: a tool allowed", tool, toolCall("search_papers", `{"query":"agents","limit":10}`), 200, "rule_allow", "call:papers/search_papers"),
		mcp("MCP: a tool denied", tool, toolCall("delete_paper", `{"id":"p1"}`), 403, "rule_deny", "call:papers/delete_paper"),
		mcp("MCP: a tool no rule names", tool, toolCall("rename_paper", `{}`), 403, "no_matching_rule", "call:papers/rename_paper"),
		mcp("MCP: an argument refused", tool, toolCall("search_papers", `{"query":"agents","limit":500}`), 403, "rule_deny", "call:papers/search_papers"),
		{Case{"MCP: a tool a person must approve, deferred", "POST", "papers.mesh", "/mcp", tool, 403, engine.ReasonApprovalRequired, true}, toolCall("export_papers", `{"format":"csv"}`), "call:papers/export_papers"},
		mcp("MCP: the tool list", tool, rpc("tools/list", `{}`), 200, "rule_allow", "list:papers/tools"),
		mcp("MCP: initialize", tool, rpc("initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`), 200, "rule_allow", "connect:papers"),
		mcp("MCP: no token, answered in JSON-RPC", [][2]string{{"content-type", "application/json"}}, toolCall("search_papers", `{}`), 401, engine.ReasonUnauthorized, ""),
		mcp("MCP: a batch", tool, []byte(`[`+string(toolCall("search_papers", `{}`))+`]`), 400, engine.ReasonBadRequest, ""),
		mcp("MCP: a duplicate key", tool, []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_papers","name":"delete_paper"}}`), 400, engine.ReasonBadRequest, ""),
		mcp("MCP: a name that is not a string", tool, rpc("tools/call", `{"name":["delete_paper"]}`), 400, engine.ReasonBadRequest, ""),
		mcp("MCP: a body over the bound", tool, Oversized(), 400, engine.ReasonBadRequest, ""),
		mcp("MCP: Mcp-Method disagrees with the body", with([2]string{agentproto.HeaderMCPMethod, "tools/list"}), toolCall("delete_paper", `{}`), 400, engine.ReasonMCPHeaderMismatch, ""),
		mcp("MCP: Mcp-Name disagrees with the body", with([2]string{agentproto.HeaderMCPMethod, "tools/call"}, [2]string{agentproto.HeaderMCPName, "search_papers"}), toolCall("delete_paper", `{}`), 400, engine.ReasonMCPHeaderMismatch, ""),
		mcp("MCP: no body", tool, nil, 400, engine.ReasonBadRequest, ""),
		mcp("MCP: a header-only tool list (2026-07-28)", with([2]string{agentproto.HeaderMCPMethod, "tools/list"}, [2]string{agentproto.HeaderMCPVersion, agentproto.HeaderRevision}), nil, 200, "rule_allow", "list:papers/tools"),
		mcp("MCP: a header-only call of a denied tool", with([2]string{agentproto.HeaderMCPMethod, "tools/call"}, [2]string{agentproto.HeaderMCPName, "delete_paper"}, [2]string{agentproto.HeaderMCPVersion, agentproto.HeaderRevision}), nil, 403, "rule_deny", "call:papers/delete_paper"),
		mcp("MCP: a header-only call whose rules read arguments", with([2]string{agentproto.HeaderMCPMethod, "tools/call"}, [2]string{agentproto.HeaderMCPName, "search_papers"}, [2]string{agentproto.HeaderMCPVersion, agentproto.HeaderRevision}), nil, 403, "rule_deny", "call:papers/search_papers"),
		{Case{"MCP: GET opens the server's stream", "GET", "papers.mesh", "/mcp", tool, 200, "rule_allow", false}, nil, "connect:papers"},
		{Case{"MCP: GET resuming a stream", "GET", "papers.mesh", "/mcp", with([2]string{"last-event-id", "0"}), 400, engine.ReasonBadRequest, false}, nil, ""},
		{Case{"MCP: DELETE ends the session", "DELETE", "papers.mesh", "/mcp", with([2]string{agentproto.HeaderMCPSession, "s1"}), 200, "rule_allow", false}, nil, "connect:papers"},
		{Case{"MCP: PUT is no MCP request", "PUT", "papers.mesh", "/mcp", tool, 400, engine.ReasonBadRequest, false}, nil, ""},
		a2a("A2A: a message to the planner, handed on", "POST", "/", rpc("message/send", `{"message":{"role":"user","messageId":"m1","parts":[{"kind":"text","text":"plan"}]}}`), 200, "rule_allow", "send:planner", true),
		a2a("A2A: a task method no rule names", "POST", "/", rpc("tasks/cancel", `{"id":"t1"}`), 403, "no_matching_rule", "task:planner/cancel", false),
		a2a("A2A: the Agent Card", "GET", "/.well-known/agent-card.json", nil, 200, "rule_allow", "connect:planner", true),
		a2a("A2A: the Agent Card of protocol 0.2", "GET", "/.well-known/agent.json", nil, 200, "rule_allow", "connect:planner", true),
		a2a("A2A: a GET of another path", "GET", "/tasks/t1", nil, 400, engine.ReasonBadRequest, "", false),
	}
}

// ServerRequest is the engine request MeshGuard's ext_authz makes of c:
// its headers through the scan every adapter uses, the route context
// MeshGuard's xDS gives Envoy's route (RouteContext), and the body Envoy
// sends with it. The message is the scan's refusal, if any.
func (e *Env) ServerRequest(c *ProtocolCase) (engine.Request, string) {
	merged := edge.MergeRepeated(c.Headers)
	r := engine.Request{Source: engine.SourceExtAuthzGRPC, Method: c.Method, Host: c.Host, Path: c.Path, Headers: edge.PairHeaders(merged), Body: c.Body}
	var sc edge.HeaderScan
	for _, h := range merged {
		if !sc.Add(h[0], h[1]) {
			break
		}
	}
	r.SetHeaders(&sc)
	ext := e.RouteContext(c.Method, c.Host, c.Path)
	r.RouteAction = ext[extauthz.ContextExtensionAction]
	r.RouteProtocol, r.RouteService = agentproto.Protocol(ext[extauthz.ContextExtensionProtocol]), ext[extauthz.ContextExtensionService]
	if v, ok := ext[extauthz.ContextExtensionMinTier]; ok {
		r.MinTier, _ = trust.Parse(v)
	}
	return r, sc.Bad()
}
