package filterdecider_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
	"github.com/meshguard/meshguard/internal/edge"
)

// records is a Recorder keeping what it is given.
type records struct {
	mu   sync.Mutex
	list []audit.Record
}

func (r *records) Write(_ context.Context, rec audit.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
	return nil
}

func newDecider(t testing.TB, env *filtertest.Env, entries int, now *time.Time, rec engine.Recorder) *filterdecider.Decider {
	t.Helper()
	cfg, err := filterconfig.Parse(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	cfg.TokenCacheEntries = entries
	d, err := filterdecider.New(cfg, filterdecider.Options{Now: func() time.Time { return *now }, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDecisionCacheDecidesEveryCaseAsTheServer: with every allow of the
// table cached, every case is decided again — twice — as the table
// (held to the server by TestDecisionsMatchTheServer) says: a request
// that differs from a cached allow in its token, delegation, method,
// host, path, query or any header gets its own decision, never the
// cached allow. A repeated allow is served from the cache with a decision
// id and audit record of its own.
func TestDecisionCacheDecidesEveryCaseAsTheServer(t *testing.T) {
	env := filtertest.New(t)
	now := filtertest.Now
	rec := &records{}
	local := newDecider(t, env, 0, &now, rec)
	ctx := context.Background()
	ids := map[string]bool{}
	allows := 0
	for pass := range 3 {
		for _, c := range env.Cases() {
			r, bad := request(&c)
			if bad != "" || c.Defer {
				continue // refused before the engine, or never decided here
			}
			d, err := local.Check(ctx, &r)
			if err != nil {
				t.Fatalf("pass %d, %s: %v", pass, c.Name, err)
			}
			if d.Status != c.Status || d.Reason != c.Reason {
				t.Fatalf("pass %d, %s: decided %d %s (%s), want %d %s", pass, c.Name, d.Status, d.Reason, d.Message, c.Status, c.Reason)
			}
			if ids[d.ID] {
				t.Fatalf("pass %d, %s: decision id %s given twice", pass, c.Name, d.ID)
			}
			ids[d.ID] = true
			if pass == 0 && d.Allowed {
				allows++
			}
		}
	}
	if n := local.CachedDecisions(); n != allows || n == 0 {
		t.Fatalf("%d decisions cached, want the table's %d allows", n, allows)
	}
	if len(rec.list) != len(ids) {
		t.Fatalf("%d records for %d decisions", len(rec.list), len(ids))
	}
	for _, r := range rec.list {
		if r.DecisionID == "" || !ids[r.DecisionID] {
			t.Fatalf("record %s names decision %q, not one given", r.ID, r.DecisionID)
		}
	}
}

// TestDecisionCacheKey: from an allow that is cached, each input changed
// alone gets a fresh decision — the one a Decider with an empty cache
// gives it — and is never the cached one.
func TestDecisionCacheKey(t *testing.T) {
	env := filtertest.New(t)
	ctx := context.Background()
	base := func() []([2]string) {
		return [][2]string{{":method", "POST"}, {":authority", "mail.mesh"}, {":path", "/outbox?to=team@example.com"}, {"authorization", "Bearer " + env.MailT}}
	}
	set := func(name, value string) func([][2]string) [][2]string {
		return func(h [][2]string) [][2]string {
			for i := range h {
				if h[i][0] == name {
					h[i][1] = value
					return h
				}
			}
			return append(h, [2]string{name, value})
		}
	}
	for _, tc := range []struct {
		name   string
		change func([][2]string) [][2]string
	}{
		{"another agent's token", set("authorization", "Bearer "+env.StrangerT)},
		{"a query value the policy reads", set(":path", "/outbox?to=eve@evil.test")},
		{"another path", set(":path", "/docs/readme")},
		{"another method", set(":method", "GET")},
		{"another host", set(":authority", "docs.mesh")},
		{"a header the engine reads", set("x-http-method-override", "DELETE")},
		{"a delegation token", set("x-meshguard-delegation", "abc.def.ghi")},
		{"the header a policy reads", set("x-meshguard-context", `{"query.to":"eve@evil.test"}`)},
		{"an unknown header", set("x-other", "1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := filtertest.Now
			warm := newDecider(t, env, 0, &now, nil)
			decide := func(d *filterdecider.Decider, hs [][2]string) engine.Decision {
				r, bad := request(&filtertest.Case{Headers: hs})
				r.Method, r.Host, r.Path = hs[0][1], hs[1][1], hs[2][1]
				if bad != "" {
					t.Fatalf("refused by the scan: %s", bad)
				}
				got, err := d.Check(ctx, &r)
				if err != nil && !errors.Is(err, filterdecider.ErrDefer) {
					t.Fatal(err)
				}
				return got
			}
			if d := decide(warm, base()); !d.Allowed || warm.CachedDecisions() != 1 {
				t.Fatalf("the base request: %d %s, %d cached", d.Status, d.Reason, warm.CachedDecisions())
			}
			changed := tc.change(base())
			got := decide(warm, changed)
			want := decide(newDecider(t, env, 0, &now, nil), changed)
			if got.Effect != want.Effect || got.Reason != want.Reason || got.Action != want.Action || got.Resource != want.Resource || got.AgentID != want.AgentID {
				t.Fatalf("with a cached allow: %s %s %s; with none: %s %s %s", got.Effect, got.Reason, got.Action, want.Effect, want.Reason, want.Action)
			}
			if got.Allowed && warm.CachedDecisions() != 2 {
				t.Fatalf("allowed, but not as a decision of its own: %d cached", warm.CachedDecisions())
			}
		})
	}
}

// TestDecisionCacheRespectsExp: a cached allow never outlives its token.
func TestDecisionCacheRespectsExp(t *testing.T) {
	env := filtertest.New(t)
	// 10 s, then 45 s on: past exp and its 30 s leeway, within the cache's
	// one-minute bound, so only exp can turn it away.
	short, _, err := env.F.Issuer.Issue(env.Orch, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	now := filtertest.Now
	local := newDecider(t, env, 0, &now, nil)
	check := func() engine.Decision {
		hs := edge.PairHeaders{{"authorization", "Bearer " + short}}
		r := engine.Request{Method: "GET", Host: "docs.mesh", Path: "/docs", Token: short, Headers: hs}
		d, err := local.Check(context.Background(), &r)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := check(); !d.Allowed || local.CachedDecisions() != 1 {
		t.Fatalf("first: %s, %d cached", d.Reason, local.CachedDecisions())
	}
	now = now.Add(45 * time.Second)
	if d := check(); d.Allowed || d.Status != 401 || !strings.Contains(d.Message, "expired") {
		t.Fatalf("after exp: %d %s", d.Status, d.Message)
	}
}

// TestDecisionCacheIsBounded: no more entries than tokenCacheEntries.
func TestDecisionCacheIsBounded(t *testing.T) {
	env := filtertest.New(t)
	now := filtertest.Now
	local := newDecider(t, env, 3, &now, nil)
	for i := range 20 {
		hs := edge.PairHeaders{{"authorization", "Bearer " + env.OrchT}}
		r := engine.Request{Method: "GET", Host: "docs.mesh", Path: fmt.Sprintf("/docs/%d", i), Token: env.OrchT, Headers: hs}
		if d, err := local.Check(context.Background(), &r); err != nil || !d.Allowed {
			t.Fatalf("%d: %s %v", i, d.Reason, err)
		}
		if n := local.CachedDecisions(); n > 3 || n == 0 {
			t.Fatalf("after %d requests: %d cached, bound 3", i+1, n)
		}
	}
}
