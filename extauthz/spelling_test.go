package extauthz

import (
	"slices"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestGRPCRemovesOtherSpellings: Envoy removes headers by their exact
// name, and CGI-style upstreams read X_MeshGuard_Agent_Id as
// X-MeshGuard-Agent-Id. An allowed request's MeshGuard headers spelled
// with '_' are removed too, so no forged identity stands beside
// MeshGuard's, whichever the upstream reads.
func TestGRPCRemovesOtherSpellings(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	client := startGRPC(t, m.f.Engine, testLog(t, nil))
	for _, tc := range []struct {
		name string
		resp func() []string
		want []string
	}{
		{"headers map", func() []string {
			_, remove, _ := allowed(t, check(t, client, envoyCheck(call{method: "GET", host: "crm.internal", path: "/contacts", token: m.mailT,
				headers: map[string]string{"x_meshguard_agent_id": m.orch.ID, "x-meshguard_tier": "privileged", "x_meshguard_delegation": "a.b.c", "x_other": "kept"}})))
			return remove
		}, []string{"x_meshguard_agent_id", "x-meshguard_tier", "x_meshguard_delegation"}},
		{"header_map", func() []string {
			_, remove, _ := allowed(t, check(t, client, rawHeaders("GET", "/contacts", "authorization", "Bearer "+m.mailT, "X_MeshGuard_Chain", "agent_forged")))
			return remove
		}, []string{"X_MeshGuard_Chain"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remove := tc.resp()
			for _, name := range append(tc.want, engine.HeaderAction, engine.HeaderDelegation) {
				if !slices.Contains(remove, name) {
					t.Errorf("headers_to_remove %v lacks %s", remove, name)
				}
			}
			if slices.Contains(remove, "x_other") {
				t.Errorf("headers_to_remove %v removes another header", remove)
			}
		})
	}
}
