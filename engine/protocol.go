package engine

import (
	"errors"
	"fmt"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
)

// errProtocol: a request to a route that declares an agent protocol
// (docs/mcp.md, docs/a2a.md) that is not one of the protocol's requests;
// agentproto's own errors say what is wrong with a body.
var errProtocol = errors.New("not a request of the route's protocol")

// The Agent Card's paths (A2A): read as connect:S. agent.json is what
// clients of protocol 0.2 ask for.
const (
	AgentCardPath    = "/.well-known/agent-card.json"
	OldAgentCardPath = "/.well-known/agent.json"
)

// readCall reads the agent-protocol call a request to service carries:
// the action comes from the request itself, never from a header alone or
// from the route (docs/mcp.md "Actions"). method is upper case and path
// normalised, without its query.
//
// MCP over Streamable HTTP: a POST carries one JSON-RPC request in its
// body; without a body (an enforcement point that was not sent it) the
// 2026-07-28 headers may stand for it (agentproto.HeaderOnly); a GET opens
// the server's stream and a DELETE ends the session, both connect:S. A2A:
// a POST carries one JSON-RPC request; a GET of the Agent Card is
// connect:S. Anything else is refused: MeshGuard does not guess what an
// unknown shape of the protocol does.
func readCall(r *Request, method, path string, proto agentproto.Protocol, service string) (*agentproto.Call, error) {
	var (
		c   agentproto.Call
		err error
	)
	switch {
	case !ValidProtocol(proto):
		return nil, refused(errProtocol, "the route declares protocol %q, which MeshGuard does not speak (mcp or a2a)", proto)
	case !ValidService(service):
		return nil, refused(errProtocol, "the route declares protocol %s without a valid service name (%q)", proto, service)
	case r.BodyError != nil:
		return nil, refused(fmt.Errorf("%w: %w", agentproto.ErrBadRequest, r.BodyError), "%s request to %s: %v", protocolName(proto), service, r.BodyError)
	case proto == agentproto.MCP && method == "POST" && len(r.Body) == 0:
		c, err = agentproto.HeaderOnly(service, headersOrNil(r.Headers))
		if errors.Is(err, agentproto.ErrNoHeaders) {
			return nil, refused(err, "an MCP request to %s carries its JSON-RPC request in the body, and this one has none (or the proxy did not send it to MeshGuard); clients of MCP 2026-07-28 may send Mcp-Method and MCP-Protocol-Version instead", service)
		}
	case proto == agentproto.MCP && method == "POST":
		c, err = agentproto.ParseMCP(service, r.Body, headersOrNil(r.Headers))
	case proto == agentproto.MCP && method == "GET" && resumes(r.Headers):
		// A resumption replays the events of an earlier stream, a POST's
		// among them: answers decided for that request (a tools/list
		// answer the gateway filtered) would come back on a GET that is
		// no list request, unfiltered (docs/mcp.md, "Lists").
		return nil, refused(errProtocol, "MCP stream resumption (a GET with Last-Event-ID) replays answers to earlier requests without their decisions, and MeshGuard does not pass it; send the request again")
	case proto == agentproto.MCP && (method == "GET" || method == "DELETE"):
		c = agentproto.Call{Protocol: proto, Service: service, Method: method, Action: "connect:" + service}
		c.SessionID, err = agentproto.SessionID(headersOrNil(r.Headers))
	case proto == agentproto.MCP:
		return nil, refused(errProtocol, "MCP over Streamable HTTP is POST (a request), GET (the server's stream) and DELETE (the end of a session), not %s", method)
	case method == "POST":
		c, err = agentproto.ParseA2A(service, r.Body)
	case method == "GET" && (path == AgentCardPath || path == OldAgentCardPath):
		c = agentproto.Call{Protocol: proto, Service: service, Method: method, Action: "connect:" + service}
	default:
		return nil, refused(errProtocol, "A2A is JSON-RPC requests (POST) and the Agent Card (GET %s), not %s %s", AgentCardPath, method, path)
	}
	if err != nil {
		return nil, refused(err, "%s request to %s: %v", protocolName(proto), service, err)
	}
	return &c, nil
}

// resumes reports whether a request asks to resume an event stream
// (Last-Event-ID, present at all: MCP servers read any value, even empty).
func resumes(h Headers) bool {
	if h == nil {
		return false
	}
	_, n := h.Lookup("last-event-id")
	return n > 0
}

// speaksJSONRPC reports whether a request is a POST to a route declaring
// a protocol (whose requests are JSON-RPC), so that every denial of it,
// from the first (no token) on, is answered as its client expects. It reads
// the route as resolve will, before the request is checked: the answer
// only shapes the denial's body, never the decision.
func (e *Engine) speaksJSONRPC(r *Request) bool {
	if r.cooperative() || r.Method != "POST" || r.RouteAction != "" {
		return false
	}
	if r.RouteProtocol != "" {
		return true
	}
	if !e.protocolRoutes {
		return false
	}
	// The path as resolve matches it: /m%63p is /mcp there too.
	path, ok := edge.NormalizePath(splitPath(r.Path))
	if !ok {
		return false // refused by resolve
	}
	rt := e.route(r.Method, identity.NormalizeHost(r.Host), path)
	return rt != nil && rt.proto != ""
}

// WantsBody reports whether deciding r needs its body: a POST to a route
// that declares an agent protocol, whose action is read from the body
// (readCall). Enforcement points that buffer bodies (the gateway) read
// them for these requests only, and stream all others.
func (e *Engine) WantsBody(r *Request) bool { return e.speaksJSONRPC(r) }

// headersOrNil keeps a nil Headers nil as agentproto's interface, so the
// parser sees no headers rather than a nil view it would call.
func headersOrNil(h Headers) agentproto.Headers {
	if h == nil {
		return nil
	}
	return h
}

func protocolName(p agentproto.Protocol) string {
	if p == agentproto.A2A {
		return "A2A"
	}
	return "MCP"
}

// listing is what an allowed list request (tools/list, …) was decided
// with, for Permits.
type listing struct {
	set *policy.Set
	in  policy.Input
}

// Permits reports whether the caller of an allowed MCP list request
// (tools/list, prompts/list, resources/list) may perform action — the
// action of one listed item (call:S/<tool>, agentproto.ListedAction) — so
// that the list the caller sees holds what it may call (docs/mcp.md,
// "Lists"). It evaluates the policy set that decided d, for the same
// agent, chain, token scope, request context and time, with the item's
// arguments taken at their most permissive: a tool allowed for some
// arguments is listed. Rate limits and hand-on are not evaluated. A list is
// never the only defence: every call is decided on its own. False for any
// decision that is not an allowed list request.
func (d *Decision) Permits(action string) bool {
	if d.listing == nil || !d.Allowed {
		return false
	}
	in := d.listing.in
	in.Action, in.ArgumentsAny, in.ArgumentsUnknown, in.Explain = action, true, false, false
	pd := d.listing.set.Evaluate(&in)
	// A tool a person may approve is one the caller may call.
	return pd.Allowed() || pd.Effect == policy.Approve
}
