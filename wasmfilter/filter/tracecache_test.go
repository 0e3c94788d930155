package filter_test

import (
	"encoding/json"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
)

// TestTraceHeaderPolicyNotServedFromCache: under a policy that refuses a
// request by its x-request-id, the filter (native and compiled, under
// wazero) refuses it after allowing the same request with another id: the
// decision cache does not serve the earlier allow (filterdecider
// TestDecisionCacheKeepsTraceHeadersAPolicyReads).
func TestTraceHeaderPolicyNotServedFromCache(t *testing.T) {
	env := filtertest.New(t)
	var m map[string]any
	if err := json.Unmarshal(env.Config(), &m); err != nil {
		t.Fatal(err)
	}
	m["policies"] = append(m["policies"].([]any), map[string]any{"name": "replays", "rules": []any{map[string]any{
		"name": "refused", "effect": "deny", "actions": []string{"read:*"},
		"conditions": map[string]any{"context": map[string]any{"header.x-request-id": map[string]any{"matches": "replay-*"}}},
	}}})
	cfg, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, cfg)
			req := func(id string) [][2]string {
				return [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"},
					{"authorization", "Bearer " + env.OrchT}, {"x-request-id", id}}
			}
			for range 2 { // decided, then from the cache
				if o := e.send(req("a1b2")); o.action != types.ActionContinue || o.local != nil {
					t.Fatalf("the allowed request: %v %+v", o.action, o.local)
				}
			}
			if o := e.send(req("replay-a1b2")); o.local == nil || o.local.StatusCode != 403 {
				t.Fatalf("the request the policy refuses: %v %+v", o.action, o.local)
			}
		})
	}
}
