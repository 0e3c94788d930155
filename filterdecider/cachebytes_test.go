package filterdecider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
	"github.com/meshguard/meshguard/internal/edge"
)

// discard is a Recorder keeping nothing: the filter's ships its records,
// so only the cache holds what a decision keeps.
type discard struct{}

func (discard) Write(context.Context, audit.Record) error { return nil }

// padPolicy reads header x-pad, so an allow keeps its value in its
// context and its record: the largest request value a policy may read
// (engine.MaxContextLen, with its key).
const padPolicy = `{"name":"padded","appliesTo":{"tags":["orchestrator"]},"rules":[{"name":"pad","effect":"allow","actions":["read:*"],` +
	`"conditions":{"context":{"header.x-pad":{"matches":"*"}}}}]}`

// paddedDecider is a Decider over env with padPolicy added.
func paddedDecider(t testing.TB, env *filtertest.Env, entries int, now *time.Time) *filterdecider.Decider {
	t.Helper()
	cfg, err := filterconfig.Parse(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	cfg.TokenCacheEntries = entries
	cfg.Policies = append(cfg.Policies, json.RawMessage(padPolicy))
	d, err := filterdecider.New(cfg, filterdecider.Options{Now: func() time.Time { return *now }, Recorder: discard{}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// entryRequest is the i-th request of a kind: "largest" is the largest
// allow an agent can have the engine make (a path of engine.MaxPathLen
// bytes, a header a policy reads at the most its value may be), "near
// the cap" one whose entry is just within maxEntryBytes (a path of
// ≈ 1.1 KB), "ordinary" one as agents send them. Every string is its own allocation, as the filter's
// are (the SDK copies each header out of the host's map).
func entryRequest(env *filtertest.Env, kind string, i int) engine.Request {
	path := fmt.Sprintf("/docs/%d/readme", i)
	pad := "1"
	switch kind {
	case "near the cap":
		path += "/" + strings.Repeat("p", 1100)
	case "largest":
		path += "/" + strings.Repeat("p", engine.MaxPathLen-len(path)-1)
		pad = strings.Repeat("v", engine.MaxContextLen-len("header.x-pad"))
	}
	hs := edge.PairHeaders{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", path}, {"authorization", "Bearer " + env.OrchT},
		{"user-agent", "agent/1.0"}, {"accept", "*/*"}, {"x-pad", pad}}
	return engine.Request{Method: "GET", Host: "docs.mesh", Path: path, Token: env.OrchT, Headers: hs, SourceAddress: "10.0.0.7:41234"}
}

// heapAfterGC is the live heap.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestDecisionCacheMemory fills a Decider's cache (10,000 entries, the
// default) with allows of each kind of entryRequest and reports the live
// heap it holds, which must stay within what 10,000 entries' structs
// (≈ 1.6 KB each, measured with ordinary entries) and the byte budget
// (8 MB) allow: 28 MB. Without the byte bound, the largest took 265 MB.
func TestDecisionCacheMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a cache of 10,000 entries")
	}
	env := filtertest.New(t)
	ctx := context.Background()
	for _, kind := range []string{"ordinary", "near the cap", "largest"} {
		t.Run(kind, func(t *testing.T) {
			now := filtertest.Now
			d := paddedDecider(t, env, 0, &now)
			const n = 10_000
			r := entryRequest(env, kind, n) // warm the token cache
			if dec, err := d.Check(ctx, &r); err != nil || !dec.Allowed {
				t.Fatalf("%s %v", dec.Reason, err)
			}
			before := heapAfterGC()
			for i := range n {
				r := entryRequest(env, kind, i)
				if dec, err := d.Check(ctx, &r); err != nil || !dec.Allowed {
					t.Fatalf("%d: %d %s %s %v", i, dec.Status, dec.Reason, dec.Message, err)
				}
			}
			after := heapAfterGC()
			held := int64(after) - int64(before)
			t.Logf("%s: %d entries cached, heap %+.1f MB (%d B an entry), KeptBytes %d B (%d B an entry)", kind, d.CachedDecisions(), float64(held)/(1<<20),
				held/int64(max(d.CachedDecisions(), 1)), d.CachedDecisionBytes(), d.CachedDecisionBytes()/max(d.CachedDecisions(), 1))
			if limit := int64(10_000*2<<10 + 8<<20); held > limit {
				t.Fatalf("%s: the cache holds %d bytes of heap, bound %d", kind, held, limit)
			}
			runtime.KeepAlive(d)
		})
	}
}

// TestDecisionCacheSkipsLargeEntries: through the Decider, an allow whose
// entry would keep more than maxEntryBytes (a long path, a long value a
// policy read) is not cached, and its repeat is decided by the engine
// again, allowed as before; an ordinary one is cached.
func TestDecisionCacheSkipsLargeEntries(t *testing.T) {
	env := filtertest.New(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		path, pad  string
		wantCached int
	}{
		{"an ordinary request", "/docs/readme", "1", 1},
		{"a path of 1 KB", "/docs/" + strings.Repeat("p", 1000), "1", 1},
		{"a path of 2 KB", "/docs/" + strings.Repeat("p", 2000), "1", 0},
		{"the longest path", "/docs/" + strings.Repeat("p", engine.MaxPathLen-len("/docs/")), "1", 0},
		{"a value read of 5 KB", "/docs/readme", strings.Repeat("v", 5000), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := filtertest.Now
			d := paddedDecider(t, env, 0, &now)
			for i := range 2 {
				hs := edge.PairHeaders{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", tc.path}, {"authorization", "Bearer " + env.OrchT}, {"x-pad", tc.pad}}
				r := engine.Request{Method: "GET", Host: "docs.mesh", Path: tc.path, Token: env.OrchT, Headers: hs}
				if dec, err := d.Check(ctx, &r); err != nil || !dec.Allowed {
					t.Fatalf("request %d: %d %s %v", i, dec.Status, dec.Reason, err)
				}
				if n := d.CachedDecisions(); n != tc.wantCached {
					t.Fatalf("request %d: %d cached (%d bytes), want %d", i, n, d.CachedDecisionBytes(), tc.wantCached)
				}
			}
		})
	}
}
