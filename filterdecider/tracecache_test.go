package filterdecider_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestDecisionCacheKeepsTraceHeadersAPolicyReads: the cache leaves trace
// context and request ids out of its key, since nothing decides on them;
// but a policy may read one (header.x-request-id, header.tracestate…),
// and then a request differing from a cached allow only there must get
// its own decision, not the cached allow.
func TestDecisionCacheKeepsTraceHeadersAPolicyReads(t *testing.T) {
	env := filtertest.New(t)
	for _, name := range []string{"x-request-id", "tracestate", "b3", "x-b3-sampled", "traceparent"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := filterconfig.Parse(env.Config())
			if err != nil {
				t.Fatal(err)
			}
			gate, err := json.Marshal(map[string]any{"name": "trace-gate", "rules": []any{map[string]any{
				"name": "refused", "effect": "deny", "actions": []string{"read:*"},
				"conditions": map[string]any{"context": map[string]any{"header." + name: map[string]any{"matches": "*blocked*"}}},
			}}})
			if err != nil {
				t.Fatal(err)
			}
			cfg.Policies = append(cfg.Policies, gate)
			now := filtertest.Now
			d, err := filterdecider.New(cfg, filterdecider.Options{Now: func() (n time.Time) { return now }})
			if err != nil {
				t.Fatal(err)
			}
			check := func(value string) engine.Decision {
				hs := edge.PairHeaders{{"authorization", "Bearer " + env.OrchT}, {name, value}}
				r := engine.Request{Method: "GET", Host: "docs.mesh", Path: "/docs", Token: env.OrchT, Headers: hs}
				got, err := d.Check(context.Background(), &r)
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			if got := check("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"); !got.Allowed {
				t.Fatalf("the allowed request: %d %s %s", got.Status, got.Reason, got.Message)
			}
			if got := check("00-0af7651916cd43dd8448eb211c80319c-blocked7169203331-01"); got.Allowed || got.Rule != "refused" {
				t.Fatalf("the request the policy refuses was %s (%s, rule %q): a cached allow served it", got.Effect, got.Reason, got.Rule)
			}
		})
	}
}
