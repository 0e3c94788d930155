package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// TestDefaultAnswer: with ANSWER_EXTRAS unset the upstream gets the agent
// id and none of the caller's own x-meshguard-agent-name, -tier, -chain or
// -decision-id (each spelling); the caller's response carries no
// x-meshguard-* header the upstream did not write.
func TestDefaultAnswer(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	agent, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})

	res := call(t, newClient(t), "GET", gw+"/proxy/docs", bearer(tok),
		"X-MeshGuard-Agent-Name: admin-bot", "X-MeshGuard-Tier: privileged", "X_MeshGuard_Chain: agent_forged",
		"X-MeshGuard-Decision-Id: dec_forged")
	if res.Status != http.StatusNoContent {
		t.Fatalf("response %d %q", res.Status, res.Body)
	}
	for name := range res.Header {
		if strings.HasPrefix(strings.ToLower(name), "x-meshguard-") {
			t.Errorf("response carries %s: %q", name, res.Header.Get(name))
		}
	}
	got := up.last(t)
	for name, want := range map[string]string{
		"X-Meshguard-Agent-Id": agent.ID, "X-Meshguard-Agent-Name": "", "X-Meshguard-Tier": "",
		"X-Meshguard-Chain": "", "X_MeshGuard_Chain": "", "X-Meshguard-Decision-Id": "",
	} {
		if v := headerFold(got.Header, name); v != want {
			t.Errorf("upstream %s = %q, want %q", name, v, want)
		}
	}
}
