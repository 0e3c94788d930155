package filterdecider

import (
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestKeyHeadersRepeatingFields: a header whose value repeats a field of
// the key is written as a word naming that field (cache.go), so the key
// still tells apart two requests that differ only in that header, or only
// in that field.
func TestKeyHeadersRepeatingFields(t *testing.T) {
	c, err := newDecisionCache(false, 10)
	if err != nil {
		t.Fatal(err)
	}
	base := func() engine.Request {
		return engine.Request{Token: "t1", Method: "GET", Host: "docs.mesh", Path: "/a", Headers: edge.PairHeaders{
			{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/a"}, {"authorization", "Bearer t1"}}}
	}
	header := func(i int, v string) func(*engine.Request) {
		return func(r *engine.Request) {
			hs := append(edge.PairHeaders(nil), r.Headers.(edge.PairHeaders)...)
			hs[i][1] = v
			r.Headers = hs
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*engine.Request)
	}{
		{"the authorization header another token's", header(3, "Bearer t2")},
		{"the authorization header another scheme's", header(3, "bearer t1")},
		{"the token another", func(r *engine.Request) { r.Token = "t2" }},
		{"the :method header another", header(0, "POST")},
		{"the method another", func(r *engine.Request) { r.Method = "POST" }},
		{"the :authority header another", header(1, "mail.mesh")},
		{"the host another", func(r *engine.Request) { r.Host = "mail.mesh" }},
		{"the :path header another", header(2, "/b")},
		{"the path another", func(r *engine.Request) { r.Path = "/b" }},
		{"the token empty, the header empty", func(r *engine.Request) { r.Token = ""; header(3, "Bearer ")(r) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base(), base()
			tc.change(&b)
			if c.key(&a) == c.key(&b) {
				t.Fatal("two requests that differ share a key")
			}
			if again := base(); c.key(&a) != c.key(&again) {
				t.Fatal("the same request got two keys")
			}
		})
	}
}
