package engine_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestRefusalMessages pins what a caller reads when the engine refuses its
// input: the status, the reason and the message, word for word, for each
// way checkBounds, resolve, checkPath and requestContext refuse a request.
// The deny bodies of every adapter carry these bytes.
func TestRefusalMessages(t *testing.T) {
	f := enginetest.New(t, `
name: refusals
rules:
  - name: example-only
    effect: deny
    actions: ["write:email"]
    conditions: {context: {query.to: {not_matches: "*@example.com"}}}
  - name: no-prod
    effect: deny
    actions: ["write:*"]
    conditions: {context: {header.x-env: {matches: prod}}}
  - {name: rest, effect: allow, actions: ["*"]}
`, enginetest.Options{})
	_, tok := f.Agent(t, "worker", 1, nil)
	keys := make(map[string]any, engine.MaxContextKeys+1)
	for i := range engine.MaxContextKeys + 1 {
		keys["k"+strconv.Itoa(i)] = "v"
	}
	full := strings.Repeat("s", engine.MaxContextLen-len("header.x-env"))
	tests := []struct {
		name   string
		r      engine.Request
		status int
		reason string
		msg    string
	}{
		// checkBounds
		{"a path over its limit", engine.Request{Method: "GET", Path: "/" + strings.Repeat("a", engine.MaxPathLen)}, 400, engine.ReasonBadRequest,
			"path is longer than the limit of 8192 bytes"},
		{"a host not UTF-8", engine.Request{Method: "GET", Host: "h\xff", Path: "/x"}, 400, engine.ReasonBadRequest,
			"host is not valid UTF-8"},
		{"a control character in the method", engine.Request{Method: "G\x01T", Path: "/x"}, 400, engine.ReasonBadRequest,
			"method contains a control character"},
		{"a context of too many keys", engine.Request{Source: engine.SourceAPI, Action: "read:x", Context: keys}, 400, engine.ReasonBadRequest,
			"context has more than 64 keys"},
		{"a context over its size", engine.Request{Source: engine.SourceAPI, Action: "read:x", Context: map[string]any{"k": strings.Repeat("c", engine.MaxContextLen)}}, 400, engine.ReasonBadRequest,
			"context is larger than the limit of 8192 bytes of JSON"},
		// normalizePath and checkPath
		{"a malformed escape in the path", engine.Request{Method: "GET", Path: "/a/%zz?q=1"}, 400, engine.ReasonBadRequest,
			`path "/a/%zz" has a malformed percent-encoding`},
		{"an empty segment", engine.Request{Method: "GET", Path: "/a//b"}, 400, engine.ReasonBadRequest,
			`path "/a//b" has an empty segment; normalise paths before authorizing (Envoy: merge_slashes)`},
		{"a path parameter", engine.Request{Method: "GET", Path: "/docs;/private"}, 400, engine.ReasonBadRequest,
			`path "/docs;/private" has a ';' (a path parameter), encoded or not: MeshGuard decides on paths without them; send the path as the upstream reads it`},
		{"an encoded slash", engine.Request{Method: "GET", Path: "/a%2fb"}, 400, engine.ReasonBadRequest,
			`path "/a%2Fb" has an encoded slash or a backslash; normalise paths before authorizing (Envoy: path_with_escaped_slashes_action)`},
		{"an encoded '?'", engine.Request{Method: "GET", Path: "/admin%3F.css"}, 400, engine.ReasonBadRequest,
			`path "/admin%3F.css" has an encoded '?', '#' or control character, which ends the path (or the name) for servers that decode before they parse`},
		{"a dot segment", engine.Request{Method: "GET", Path: "/docs/../admin"}, 400, engine.ReasonBadRequest,
			`path "/docs/../admin" has a dot segment; normalise paths before authorizing (Envoy: normalize_path)`},
		{"an encoded dot segment", engine.Request{Method: "GET", Path: "/docs/%2e/admin"}, 400, engine.ReasonBadRequest,
			`path "/docs/./admin" has a dot segment; normalise paths before authorizing (Envoy: normalize_path)`},
		// resolve
		{"a method in lower case", engine.Request{Method: "post", Path: "/x"}, 400, engine.ReasonBadRequest,
			`method "post" is not in upper case: methods are case-sensitive, and routes match them exactly; send "POST"`},
		{"an override header", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-http-method-override": "DELETE"}}, 400, engine.ReasonBadRequest,
			`header x-http-method-override asks the upstream to execute another method than "POST"; MeshGuard decides on the method the upstream executes: send that method itself`},
		{"an override parameter", engine.Request{Method: "POST", Path: "/x?_method=DELETE"}, 400, engine.ReasonBadRequest,
			`query parameter _method asks the upstream to execute another method than "POST"; MeshGuard decides on the method the upstream executes: send that method itself`},
		{"a method that maps to no verb", engine.Request{Method: "BREW", Path: "/coffee"}, 403, engine.ReasonActionUnresolved,
			`no route maps this request and method "BREW" maps to no verb; map it to an action with a route (config routes:, or the service catalogue's)`},
		{"an action without a verb", engine.Request{Source: engine.SourceAPI, Action: "everything"}, 400, engine.ReasonBadRequest,
			`action "everything": expected verb:resource without whitespace`},
		{"a route action with a control character", engine.Request{Method: "GET", Path: "/x", RouteAction: "read:x\x1b"}, 400, engine.ReasonBadRequest,
			`action "read:x\x1b" or resource "/x" contains a control character`},
		// requestContext
		{"a header a policy reads, twice", engine.Request{Method: "POST", Path: "/x", Headers: edge.PairHeaders{{"x-env", "a"}, {"x-env", "b"}}}, 400, engine.ReasonBadRequest,
			`header "x-env", which a policy reads, holds more than one value (it was sent twice, perhaps once with '_' for '-', or holds a list); send one value`},
		{"a ';' in the query", engine.Request{Method: "POST", Path: "/email?to=a@example.com;x=1"}, 400, engine.ReasonBadRequest,
			"the query holds a ';', which servers split differently; a policy reads query parameters, so separate them with '&' only"},
		{"a malformed escape in a query name", engine.Request{Method: "POST", Path: "/email?t%zo=a@example.com"}, 400, engine.ReasonBadRequest,
			`query parameter "t%zo" has a malformed percent-encoding`},
		{"a malformed escape in a query value", engine.Request{Method: "POST", Path: "/email?to=a%4"}, 400, engine.ReasonBadRequest,
			`query parameter "to" has a malformed percent-encoding`},
		{"a query parameter twice", engine.Request{Method: "POST", Path: "/email?to=a@example.com&TO=b@example.com"}, 400, engine.ReasonBadRequest,
			`query parameter "to", which a policy reads, appears more than once (servers read "to[]" and other cases of it as the same parameter); send it once`},
		{"a query value not UTF-8", engine.Request{Method: "POST", Path: "/email?to=%ff"}, 400, engine.ReasonBadRequest,
			"request value query.to is not valid UTF-8"},
		{"values read over their limit", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-env": full + "s"}}, 400, engine.ReasonBadRequest,
			"the request values policies read exceed the limit of 8192 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Token = tok
			d := check(t, f.Engine, tc.r)
			if d.Status != tc.status || d.Reason != tc.reason || d.Message != tc.msg || d.Allowed {
				t.Fatalf("got %d %s %q\nwant %d %s %q", d.Status, d.Reason, d.Message, tc.status, tc.reason, tc.msg)
			}
		})
	}
}
