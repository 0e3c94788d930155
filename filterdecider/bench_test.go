package filterdecider_test

import (
	"context"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/internal/edge"
)

// BenchmarkCheck is one allowed request decided by the filter's Decider:
// by the engine (a request the cache does not take: its headers are not
// the filter's pairs) and served from the decision cache. Its fixtures
// use the SQLite store, so it runs natively only; the compiled filter's
// figures come from wasmfilter's BenchmarkRequest (make bench-wasm).
func BenchmarkCheck(b *testing.B) {
	env := filtertest.New(b)
	now := filtertest.Now
	rec := &records{}
	local := newDecider(b, env, 0, &now, rec)
	ctx := context.Background()
	hs := edge.PairHeaders{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + env.OrchT},
		{"user-agent", "agent/1.0"}, {"accept", "*/*"}, {"x-request-id", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"}}
	for _, tc := range []struct {
		name    string
		headers engine.Headers
	}{{"engine", edge.MapHeaders{}}, {"cached", hs}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				r := engine.Request{Method: "GET", Host: "docs.mesh", Path: "/docs/readme", Token: env.OrchT, Headers: tc.headers}
				if d, err := local.Check(ctx, &r); err != nil || !d.Allowed {
					b.Fatal(d.Reason, err)
				}
				rec.list = rec.list[:0]
			}
		})
	}
}
