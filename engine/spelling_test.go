package engine_test

import (
	"reflect"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
)

// Servers read some requests in ways a literal reading misses. The tests
// here send the other spellings: each must be read as the server would,
// or refused, never decided on one reading while the upstream acts on
// another.

// spelling is one request and what the engine must make of it.
type spelling struct {
	name    string
	r       engine.Request
	status  int
	rule    string
	context map[string]any // checked when the status is not 400
}

// decideSpellings decides each request with a policy that reads a query
// parameter, a header and the verb.
func decideSpellings(t *testing.T, tests []spelling) {
	t.Helper()
	f := enginetest.New(t, `
name: spellings
rules:
  - name: example-only
    effect: deny
    actions: ["write:email"]
    conditions: {context: {query.to: {not_matches: "*@example.com"}}}
  - name: no-admin-account
    effect: deny
    actions: ["read:*"]
    conditions: {context: {query.account_id: {matches: admin}}}
  - name: no-prod
    effect: deny
    actions: ["write:*"]
    conditions: {context: {header.x-env: {matches: prod}}}
  - {name: no-deletes, effect: deny, actions: ["delete:*"]}
  - {name: rest, effect: allow, actions: ["*"]}
`, enginetest.Options{})
	_, tok := f.Agent(t, "worker", 1, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Token = tok
			d := check(t, f.Engine, tc.r)
			if d.Status != tc.status || d.Rule != tc.rule {
				t.Fatalf("got %d %s %q (%s), want %d %q", d.Status, d.Reason, d.Rule, d.Message, tc.status, tc.rule)
			}
			if tc.status == 400 && d.Reason != engine.ReasonBadRequest {
				t.Fatalf("reason %s", d.Reason)
			}
			if tc.status != 400 && !reflect.DeepEqual(d.Context, tc.context) {
				t.Fatalf("context %v, want %v", d.Context, tc.context)
			}
		})
	}
}

// TestQueryParameterSpellings: to[] (and to[0]) is to to PHP, Rails and
// Express, TO is to to ASP.NET, account.id and "account id" are
// account_id to PHP. A policy reading query.to reads them all, and two of
// them are a parameter sent twice.
func TestQueryParameterSpellings(t *testing.T) {
	decideSpellings(t, []spelling{
		{"to[] beside to", engine.Request{Method: "POST", Path: "/email?to=a@example.com&to[]=eve@evil.test"}, 400, "", nil},
		{"to%5B%5D beside to", engine.Request{Method: "POST", Path: "/email?to=a@example.com&to%5B%5D=eve@evil.test"}, 400, "", nil},
		{"to[0] beside to", engine.Request{Method: "POST", Path: "/email?to=a@example.com&to[0]=eve@evil.test"}, 400, "", nil},
		{"TO beside to", engine.Request{Method: "POST", Path: "/email?to=a@example.com&TO=eve@evil.test"}, 400, "", nil},
		{"to[] alone is to", engine.Request{Method: "POST", Path: "/email?to[]=a@example.com"}, 200, "rest", map[string]any{"query.to": "a@example.com"}},
		{"To alone is to", engine.Request{Method: "POST", Path: "/email?To=eve@evil.test"}, 403, "example-only", map[string]any{"query.to": "eve@evil.test"}},
		{"account.id is account_id", engine.Request{Method: "GET", Path: "/accounts?account.id=admin"}, 403, "no-admin-account", map[string]any{"query.account_id": "admin"}},
		{"account id (a space) is account_id", engine.Request{Method: "GET", Path: "/accounts?account+id=admin"}, 403, "no-admin-account", map[string]any{"query.account_id": "admin"}},
		{"account_id itself", engine.Request{Method: "GET", Path: "/accounts?account_id=admin"}, 403, "no-admin-account", map[string]any{"query.account_id": "admin"}},
		{"another parameter is another", engine.Request{Method: "GET", Path: "/accounts?account_ids=admin"}, 200, "rest", nil},
	})
}

// TestHeaderNameSpellings: CGI-style servers (WSGI, Rack, PHP, anything
// behind FastCGI) put X-Env and X_Env both in HTTP_X_ENV. A policy reading
// header.x-env reads x_env too, and the two together are a header sent
// twice, in every shape adapters hold headers in.
func TestHeaderNameSpellings(t *testing.T) {
	decideSpellings(t, []spelling{
		{"x_env is x-env", engine.Request{Method: "POST", Path: "/x", Headers: edge.PairHeaders{{"x_env", "prod"}}}, 403, "no-prod", map[string]any{"header.x-env": "prod"}},
		{"X_Env beside x-env (pairs)", engine.Request{Method: "POST", Path: "/x", Headers: edge.PairHeaders{{"x-env", "staging"}, {"X_Env", "prod"}}}, 400, "", nil},
		{"x_env beside x-env (Envoy's map)", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-env": "staging", "x_env": "prod"}}, 400, "", nil},
		{"X_env beside X-Env (net/http)", engine.Request{Method: "POST", Path: "/x", Headers: edge.MultiHeaders{"X-Env": {"staging"}, "X_env": {"prod"}}}, 400, "", nil},
		{"x-env alone", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-env": "staging", "x-envy": "prod"}}, 200, "rest", map[string]any{"header.x-env": "staging"}},
	})
}

// TestMethodOverrides: Rails, Laravel, Spring, Express and ASP.NET, with
// their override middleware, execute on a POST the method an X-HTTP-Method-Override
// header (or X-HTTP-Method, X-Method-Override) or a _method parameter
// names instead of the request's: a POST allowed as a write would run as a
// DELETE. A request naming a method other than its own is refused. So is
// a method not in upper case: methods are case-sensitive, and a proxy's
// route (Envoy's, the catalogue's) matches them exactly, so "post /outbox"
// misses the route that maps POST /outbox to its action.
func TestMethodOverrides(t *testing.T) {
	decideSpellings(t, []spelling{
		{"X-HTTP-Method-Override: DELETE", engine.Request{Method: "POST", Path: "/contacts/1", Headers: edge.MapHeaders{"x-http-method-override": "DELETE"}}, 400, "", nil},
		{"X-HTTP-Method: DELETE", engine.Request{Method: "POST", Path: "/contacts/1", Headers: edge.MultiHeaders{"X-Http-Method": {"DELETE"}}}, 400, "", nil},
		{"X-Method-Override: DELETE", engine.Request{Method: "POST", Path: "/contacts/1", Headers: edge.PairHeaders{{"X-Method-Override", "delete"}}}, 400, "", nil},
		{"x_http_method_override: DELETE", engine.Request{Method: "POST", Path: "/contacts/1", Headers: edge.PairHeaders{{"x_http_method_override", "DELETE"}}}, 400, "", nil},
		{"_method=DELETE", engine.Request{Method: "POST", Path: "/contacts/1?_method=DELETE"}, 400, "", nil},
		{"_method after a ';'", engine.Request{Method: "POST", Path: "/contacts/1?a=1;_method=DELETE"}, 400, "", nil},
		{"_m%65thod=DELETE", engine.Request{Method: "POST", Path: "/contacts/1?_m%65thod=DELETE"}, 400, "", nil},
		{"%5Fmethod=DELETE", engine.Request{Method: "POST", Path: "/contacts/1?%5Fmethod=DELETE"}, 400, "", nil},
		{"an override naming the method itself", engine.Request{Method: "POST", Path: "/contacts/1?_method=post", Headers: edge.MapHeaders{"x-http-method-override": "POST"}}, 200, "rest", nil},
		{"a GET's override is not honoured", engine.Request{Method: "GET", Path: "/contacts/1?_method=DELETE", Headers: edge.MapHeaders{"x-http-method-override": "DELETE"}}, 200, "rest", nil},
		{"a lower-case delete", engine.Request{Method: "delete", Path: "/contacts/1"}, 400, "", nil},
		{"a lower-case post", engine.Request{Method: "post", Path: "/contacts/1"}, 400, "", nil},
		{"DELETE itself", engine.Request{Method: "DELETE", Path: "/contacts/1"}, 403, "no-deletes", nil},
	})
}

// TestEscapedDelimitersInPaths: a server that decodes a path before it
// parses it splits "/docs%3B/private/x" at the ';' (a path parameter),
// "/admin%3F.css" at the '?' and "/admin%23.css" at the '#', and C code
// stops at "%00": each would serve another resource than the one decided.
// The gateway refuses them decoded; the engine refuses them encoded, for
// every point.
func TestEscapedDelimitersInPaths(t *testing.T) {
	decideSpellings(t, []spelling{
		{"an escaped ';'", engine.Request{Method: "GET", Path: "/docs%3B/private/x"}, 400, "", nil},
		{"an escaped ';' in lower case", engine.Request{Method: "GET", Path: "/docs%3b/private/x"}, 400, "", nil},
		{"an escaped '?'", engine.Request{Method: "GET", Path: "/admin%3F.css"}, 400, "", nil},
		{"an escaped '#'", engine.Request{Method: "GET", Path: "/admin%23.css"}, 400, "", nil},
		{"an escaped NUL", engine.Request{Method: "GET", Path: "/secret.txt%00.png"}, 400, "", nil},
		{"an escaped line feed", engine.Request{Method: "GET", Path: "/a%0Ab"}, 400, "", nil},
		{"an escaped DEL", engine.Request{Method: "GET", Path: "/a%7f"}, 400, "", nil},
		{"an escaped space is a space", engine.Request{Method: "GET", Path: "/a%20b%C3%A9"}, 200, "rest", nil},
	})
}
