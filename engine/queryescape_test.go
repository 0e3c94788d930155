package engine_test

import (
	"testing"

	"github.com/meshguard/meshguard/engine"
)

// TestQueryEscapesDecodeEveryHexDigit: a query parameter a policy reads is
// decoded as HTML forms encode it, its escapes in either case (docs/
// enforcement.md: "what the request really carries"). Each end of each
// range of hex digits — 0 and 9, a and f, A and F — decodes to its value,
// and the characters just outside them are a malformed escape (400),
// never a guess.
func TestQueryEscapesDecodeEveryHexDigit(t *testing.T) {
	to := func(v string) map[string]any { return map[string]any{"query.to": v} }
	decideSpellings(t, []spelling{
		// %30 '0', %39 '9', %4a and %4A 'J', %6f 'o', %4F 'O', %6a 'j', %46 'F'.
		{"every end of every range", engine.Request{Method: "POST", Path: "/email?to=%30%39%4a%4A%6f%4F%6a%46@example.com"}, 200, "rest", to("09JJoOjF@example.com")},
		{"an escaped address is read decoded", engine.Request{Method: "POST", Path: "/email?to=eve%40evil.test"}, 403, "example-only", to("eve@evil.test")},
		{"'+' is a space", engine.Request{Method: "POST", Path: "/email?to=a+b@example.com"}, 200, "rest", to("a b@example.com")},
		{"g after f", engine.Request{Method: "POST", Path: "/email?to=%4g@example.com"}, 400, "", nil},
		{"G after F", engine.Request{Method: "POST", Path: "/email?to=%4G@example.com"}, 400, "", nil},
		{"'/' before 0", engine.Request{Method: "POST", Path: "/email?to=%/0@example.com"}, 400, "", nil},
		{"':' after 9", engine.Request{Method: "POST", Path: "/email?to=%:0@example.com"}, 400, "", nil},
		{"'@' before A", engine.Request{Method: "POST", Path: "/email?to=%@0@example.com"}, 400, "", nil},
		{"'`' before a", engine.Request{Method: "POST", Path: "/email?to=%`0@example.com"}, 400, "", nil},
		{"an escape cut short", engine.Request{Method: "POST", Path: "/email?to=a@example.com%4"}, 400, "", nil},
	})
}
