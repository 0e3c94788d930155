package engine_test

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestConfigRoutesMatch: the config's routes are tried in order and the
// first that matches gives the action; path and host are patterns, the
// host is matched however the request spells it, and the method is exact
// — any when absent or "*" (docs/enforcement.md, "Actions"). A request no
// route matches gets the action derived from its method and path.
func TestConfigRoutesMatch(t *testing.T) {
	f := enginetest.New(t, "name: all\nrules:\n  - {name: any, effect: allow, actions: [\"*\"]}\n", enginetest.Options{Routes: []engine.Route{
		{Method: "POST", Path: "/mail/send", Action: "write:email"},
		{Host: "docs.*", Path: "/drafts/*", Action: "write:drafts"},
		{Method: "*", Path: "/any/*", Action: "any:thing"},
		{Host: "*", Method: "get", Path: "/lower/*", Action: "read:lower"},
		{Path: "/mail/*", Action: "read:mailbox"},
	}})
	_, tok := f.Agent(t, "worker", 1, nil)
	tests := []struct {
		name, method, host, path, action string
	}{
		{"the method a route names", "POST", "api.internal", "/mail/send", "write:email"},
		{"another method: the next route", "GET", "api.internal", "/mail/send", "read:mailbox"},
		{"the host a route names", "PUT", "docs.example", "/drafts/a", "write:drafts"},
		{"the host in another spelling", "PUT", "DOCS.example.:8080", "/drafts/a", "write:drafts"},
		{"another host: derived", "PUT", "mail.example", "/drafts/a", "write:drafts/a"},
		{"no host: derived", "PUT", "", "/drafts/a", "write:drafts/a"},
		{"method * is any method", "DELETE", "api.internal", "/any/x", "any:thing"},
		{"method * is any method, GET too", "GET", "", "/any/x", "any:thing"},
		{"a route's method in lower case", "GET", "", "/lower/x", "read:lower"},
		{"host * is any host", "GET", "elsewhere.example", "/lower/x", "read:lower"},
		{"not the route's method: derived", "POST", "api.internal", "/lower/x", "write:lower/x"},
		{"no method: any method", "PATCH", "api.internal", "/mail/x", "read:mailbox"},
		{"no route: derived", "GET", "api.internal", "/other", "read:other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, f.Engine, engine.Request{Token: tok, Method: tc.method, Host: tc.host, Path: tc.path})
			if d.Action != tc.action || !d.Allowed {
				t.Fatalf("%s %s%s: action %q (%d %s), want %q", tc.method, tc.host, tc.path, d.Action, d.Status, d.Message, tc.action)
			}
		})
	}
}

// TestConfigRoutesAreValidated: a route that could never match as written
// is refused when the engine is built, the error naming the route by
// index and the field.
func TestConfigRoutesAreValidated(t *testing.T) {
	ok := engine.Route{Method: "POST", Path: "/mail/send", Action: "write:email"}
	tests := []struct {
		name  string
		route engine.Route
		field string // "" for a valid route
	}{
		{"every HTTP method", engine.Route{Method: "OPTIONS", Path: "/x", Action: "read:x"}, ""},
		{"a method in lower case", engine.Route{Method: "trace", Path: "/x", Action: "read:x"}, ""},
		{"any method", engine.Route{Method: "*", Path: "*", Action: "read:x"}, ""},
		{"no such method", engine.Route{Method: "BREW", Path: "/x", Action: "read:x"}, "routes[1].method"},
		{"a path not starting with /", engine.Route{Path: "x", Action: "read:x"}, "routes[1].path"},
		{"a path over the limit", engine.Route{Path: "/" + strings.Repeat("p", engine.MaxPathLen), Action: "read:x"}, "routes[1].path"},
		{"an action without a verb", engine.Route{Path: "/x", Action: "x"}, "routes[1].action"},
		{"an action with a pattern", engine.Route{Path: "/x", Action: "read:*"}, "routes[1].action"},
		{"an MCP route without an action", engine.Route{Path: "/mcp", Protocol: "mcp", Service: "mail"}, ""},
		{"an A2A route with an action", engine.Route{Path: "/a2a", Protocol: "a2a", Service: "planner", Action: "send:planner"}, "routes[1].action"},
		{"an unknown protocol", engine.Route{Path: "/mcp", Protocol: "grpc", Service: "mail"}, "routes[1].protocol"},
		{"a protocol in upper case", engine.Route{Path: "/mcp", Protocol: "MCP", Service: "mail"}, "routes[1].protocol"},
		{"a protocol without a service", engine.Route{Path: "/mcp", Protocol: "mcp"}, "routes[1].service"},
		{"a service without a protocol", engine.Route{Path: "/mcp", Service: "mail", Action: "write:mcp"}, "routes[1].service"},
		{"a service that is no DNS label", engine.Route{Path: "/mcp", Protocol: "mcp", Service: "mail/x"}, "routes[1].service"},
		{"a service over the limit", engine.Route{Path: "/mcp", Protocol: "mcp", Service: strings.Repeat("m", engine.MaxServiceLen+1)}, "routes[1].service"},
		{"no action and no protocol", engine.Route{Path: "/mcp"}, "routes[1].action"},
		{"a protocol route with a bad action", engine.Route{Path: "/mcp", Protocol: "mcp", Service: "mail", Action: "call"}, "routes[1].action"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := enginetest.New(t, "name: all\nrules:\n  - {name: any, effect: allow, actions: [\"*\"]}\n", enginetest.Options{})
			_, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer, Agents: f.Agents,
				Policies: f.Policies, Limiter: f.Limiter, Routes: []engine.Route{ok, tc.route}})
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.field+": ")):
				t.Fatalf("got %v, want an error about %s", err, tc.field)
			}
		})
	}
}
