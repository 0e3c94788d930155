package filterdecider_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestRepeatWithAFieldOfItsOwnIsRecordedAsItself: a cached allow's
// record is copied from the first request's (engine.KeepRecord), so every
// request field the record holds must be in the cache's key, or a request
// that differs only there is recorded as the first one (another source
// address, say: a forged trail). For every allow of the table, a second
// request that differs in one such field — after the first was cached — is
// recorded exactly as a decider that never saw the first records it, but
// for what is each request's own (ids, time, trace, latency).
func TestRepeatWithAFieldOfItsOwnIsRecordedAsItself(t *testing.T) {
	env := filtertest.New(t)
	now := filtertest.Now
	ctx := context.Background()
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	variants := []struct {
		name   string
		change func(r *engine.Request)
		trace  bool // the second carries a trace context: its record has that trace
	}{
		{"another source address", func(r *engine.Request) { r.SourceAddress = "10.9.8.7" }, false},
		{"another proxy", func(r *engine.Request) { r.Proxy = "egress-b" }, false},
		{"another header", func(r *engine.Request) { *r = withHeader(*r, "x-other", "1") }, false},
		{"another trace context (left out of the key)", func(r *engine.Request) {
			*r = withHeader(*r, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		}, true},
	}
	cases := 0
	for _, c := range env.Cases() {
		first, bad := request(&c)
		if bad != "" || c.Defer || c.Status != 200 {
			continue
		}
		first.SourceAddress, first.Proxy = "10.0.3.17", "egress-a"
		cases++
		for _, v := range variants {
			t.Run(c.Name+"/"+v.name, func(t *testing.T) {
				cachedRecs := &records{}
				cached := newDecider(t, env, 0, &now, cachedRecs)
				cachedFirst := first
				if v.trace {
					// A trace context of its own: the key counts headers.
					cachedFirst = withHeader(first, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
				}
				if _, err := cached.Check(ctx, new(cachedFirst)); err != nil {
					t.Fatal(err)
				}
				second := first
				v.change(&second)
				if _, err := cached.Check(ctx, new(second)); err != nil {
					t.Fatal(err)
				}
				if v.trace && cached.CachedDecisions() != 1 {
					t.Fatalf("%d cached decisions: the repeat with a trace context was not served from the cache", cached.CachedDecisions())
				}
				freshRecs := &records{}
				if _, err := newDecider(t, env, 0, &now, freshRecs).Check(ctx, new(second)); err != nil {
					t.Fatal(err)
				}
				if len(cachedRecs.list) != 2 || len(freshRecs.list) != 1 {
					t.Fatalf("%d and %d records, want 2 and 1", len(cachedRecs.list), len(freshRecs.list))
				}
				got, want := cachedRecs.list[1], freshRecs.list[0]
				if v.trace && (got.TraceID != traceID || got.TraceID == cachedRecs.list[0].TraceID) {
					t.Errorf("the second request's record has trace %q, want its own %q", got.TraceID, traceID)
				}
				if !reflect.DeepEqual(ownFieldsCleared(got), ownFieldsCleared(want)) {
					t.Fatalf("the second request is recorded as\n%+v\nwant\n%+v", ownFieldsCleared(got), ownFieldsCleared(want))
				}
			})
		}
	}
	if cases == 0 {
		t.Fatal("no allow in the table")
	}
}

// withHeader is r with one header more, its headers read again as the
// filter reads them (the trace context among them).
func withHeader(r engine.Request, name, value string) engine.Request {
	hs := append(append(edge.PairHeaders(nil), r.Headers.(edge.PairHeaders)...), [2]string{name, value})
	out := engine.Request{Method: r.Method, Host: r.Host, Path: r.Path, Headers: hs, SourceAddress: r.SourceAddress, Proxy: r.Proxy}
	var sc edge.HeaderScan
	for _, h := range hs {
		if !sc.Add(h[0], h[1]) {
			break
		}
	}
	out.SetHeaders(&sc)
	return out
}
