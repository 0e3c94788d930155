package engine_test

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestRequestValuesAtTheirEdges: the values a policy reads from the
// request (docs/enforcement.md, "Request context") at the edges of the
// rules that read them: a separator or a fragment as the query's first
// byte, a list's comma as a header value's first byte, a name of the same
// length as the one read, a '+' or an escape as a value's first byte, and
// the 8 KiB the values read may take together.
func TestRequestValuesAtTheirEdges(t *testing.T) {
	to := func(v string) map[string]any { return map[string]any{"query.to": v} }
	env := func(v string) map[string]any { return map[string]any{"header.x-env": v} }
	// header.x-env and its value take exactly 8 KiB.
	full := strings.Repeat("s", engine.MaxContextLen-len("header.x-env"))
	decideSpellings(t, []spelling{
		{"a ';' as the query's first byte", engine.Request{Method: "POST", Path: "/email?;to=a@example.com"}, 400, "", nil},
		{"a fragment right after the '?' ends the query", engine.Request{Method: "POST", Path: "/email?#&to=a@example.com"}, 403, "example-only", nil},
		{"a name as long as the one read is another name", engine.Request{Method: "POST", Path: "/email?tx=a@example.com"}, 403, "example-only", nil},
		{"beside the one read, it is not read twice", engine.Request{Method: "POST", Path: "/email?to=a@example.com&tx=eve@evil.test"}, 200, "rest", to("a@example.com")},
		{"a '+' as a value's first byte is a space", engine.Request{Method: "POST", Path: "/email?to=+a@example.com"}, 200, "rest", to(" a@example.com")},
		{"an escape whose first digit is 0", engine.Request{Method: "POST", Path: "/email?to=a%09b@example.com"}, 200, "rest", to("a\tb@example.com")},
		{"a comma as a header value's first byte is a list", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-env": ",prod"}}, 400, "", nil},
		{"values read of exactly 8 KiB", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-env": full}}, 200, "rest", env(full)},
		{"values read one byte over", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-env": full + "s"}}, 400, "", nil},
	})
}
