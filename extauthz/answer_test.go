package extauthz

import (
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// spoofed are the identity headers the default answer no longer sets: a
// caller's own value of each must never reach the upstream.
var spoofed = map[string]string{
	engine.HeaderAgentName: "admin-bot", engine.HeaderTier: "privileged",
	engine.HeaderChain: "agent_forged", engine.HeaderDecisionID: "dec_forged",
}

// TestGRPCDefaultAnswer: with ANSWER_EXTRAS unset an allow sets the agent
// id (and a minted delegation) upstream, nothing on the caller's response,
// decision_id alone in the metadata; and it removes, by name, every
// identity header it does not set, whether Envoy sent MeshGuard the
// caller's spoof of it or (allowed_headers restricted) did not.
func TestGRPCDefaultAnswer(t *testing.T) {
	em := enginetest.NewMesh(t, enginetest.Options{Routes: routes})
	client := startGRPC(t, em.F.Engine, testLog(t, nil))
	for _, tc := range []struct {
		name    string
		headers map[string]string
	}{
		{"the spoofs sent to MeshGuard", spoofed},
		{"the spoofs kept from MeshGuard", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := check(t, client, envoyCheck(call{method: "GET", host: "docs.internal:8080", path: "/docs/readme", token: em.ResT, headers: tc.headers}))
			up, remove, rh := allowed(t, resp)
			if len(up) != 1 || up[engine.HeaderAgentID] != em.Res.ID {
				t.Errorf("upstream headers %v, want the agent id alone", up)
			}
			for name := range spoofed {
				if !slices.Contains(remove, name) {
					t.Errorf("%s is not removed: headers_to_remove %v", name, remove)
				}
			}
			if len(rh) != 0 || len(resp.GetOkResponse().GetResponseHeadersToAdd()) != 0 {
				t.Errorf("response headers %v, want none", rh)
			}
			md := resp.GetDynamicMetadata().GetFields()
			if len(md) != 1 || !strings.HasPrefix(md["decision_id"].GetStringValue(), "dec_") {
				t.Errorf("dynamic metadata %v, want decision_id alone", md)
			}
		})
	}

	// A hand-off: the token minted for the target goes upstream.
	resp := check(t, client, envoyCheck(call{method: "POST", host: "researcher.mesh", path: "/research/x", token: em.OrchT, headers: spoofed}))
	up, remove, _ := allowed(t, resp)
	if len(up) != 2 || up[engine.HeaderAgentID] != em.Orch.ID || up[engine.HeaderDelegation] == "" || slices.Contains(remove, engine.HeaderDelegation) {
		t.Errorf("hand-off: upstream %v, removed %v", up, remove)
	}

	// A denial keeps its headers and body.
	resp = check(t, client, envoyCheck(call{method: "POST", host: "smtp.internal", path: "/email?to=eve@evil.test", token: em.MailT}))
	dr := resp.GetDeniedResponse()
	h := headerMap(t, dr.GetHeaders())
	b := decodeBody(t, []byte(dr.GetBody()))
	if dr.GetStatus().GetCode() != 403 || h[engine.HeaderDecision] != "deny" || h[engine.HeaderTraceID] != b.TraceID || h[engine.HeaderPolicy] != "emailers" ||
		b.Rule != "no-external" || resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() != b.DecisionID {
		t.Errorf("denial: %v", resp)
	}
}

// TestHTTPDefaultAnswer: the same over HTTP ext_authz, where Envoy sends
// MeshGuard only allowed_headers: x-envoy-auth-headers-to-remove names
// every identity header MeshGuard does not set.
func TestHTTPDefaultAnswer(t *testing.T) {
	em := enginetest.NewMesh(t, enginetest.Options{Routes: routes})
	srv := startHTTP(t, em.F.Engine, testLog(t, nil))
	resp, _ := envoyHTTP(t, srv.URL, "GET", "docs.internal:8080", "/docs/readme", map[string]string{"Authorization": "Bearer " + em.ResT})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := resp.Header
	remove := strings.Split(h.Get(HeaderAuthHeadersToRemove), ", ")
	for name := range spoofed {
		if h.Get(name) != "" || !slices.Contains(remove, name) {
			t.Errorf("%s: set to %q, removed %v", name, h.Get(name), remove)
		}
	}
	if h.Get(engine.HeaderAgentID) != em.Res.ID || h.Get(engine.HeaderDecision) != "" || h.Get(engine.HeaderTraceID) != "" {
		t.Errorf("headers %v", h)
	}
}
