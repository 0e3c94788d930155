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

// TestOtherSpellingsAtExtAuthz: over gRPC and HTTP, requests an upstream
// reads otherwise than a literal reading does — a parameter as to[], a
// header as x_env, a POST as the DELETE its override names, a method in
// lower case, an escaped ';' — are refused with 400.
func TestOtherSpellingsAtExtAuthz(t *testing.T) {
	f := enginetest.New(t, `
name: mail
rules:
  - name: example-only
    effect: deny
    actions: ["write:*"]
    conditions: {context: {query.to: {not_matches: "*@example.com"}}}
  - name: no-prod
    effect: deny
    actions: ["write:*"]
    conditions: {context: {header.x-env: {matches: prod}}}
  - {name: work, effect: allow, actions: ["read:*", "write:*"]}
`, enginetest.Options{Answer: engine.AnswerAll})
	_, tok := f.Agent(t, "writer", 1, nil)
	client := startGRPC(t, f.Engine, testLog(t, nil))
	srv := startHTTP(t, f.Engine, testLog(t, nil))
	tests := []struct {
		name, method, path string
		headers            map[string]string
		status             int
	}{
		{"the plain request", "POST", "/mail/send?to=a@example.com", map[string]string{"x-env": "staging"}, 200},
		{"to[] beside to", "POST", "/mail/send?to=a@example.com&to[]=eve@evil.test", map[string]string{"x-env": "staging"}, 400},
		{"x_env beside x-env", "POST", "/mail/send?to=a@example.com", map[string]string{"x-env": "staging", "x_env": "prod"}, 400},
		{"x_env alone", "POST", "/mail/send?to=a@example.com", map[string]string{"x_env": "prod"}, 403},
		{"a POST overridden to DELETE", "POST", "/mail/1?to=a@example.com", map[string]string{"x-env": "staging", "x-http-method-override": "DELETE"}, 400},
		{"a method in lower case", "post", "/mail/send?to=a@example.com", map[string]string{"x-env": "staging"}, 400},
		{"an escaped ';'", "GET", "/mail%3B/send", nil, 400},
	}
	for _, tc := range tests {
		t.Run("grpc/"+tc.name, func(t *testing.T) {
			resp := check(t, client, envoyCheck(call{method: tc.method, host: "mail.internal", path: tc.path, token: tok, headers: tc.headers}))
			status := 200
			if dr := resp.GetDeniedResponse(); dr != nil {
				status = int(dr.GetStatus().GetCode())
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, resp.GetDeniedResponse().GetBody())
			}
		})
		t.Run("http/"+tc.name, func(t *testing.T) {
			h := map[string]string{"Authorization": "Bearer " + tok}
			for k, v := range tc.headers {
				h[k] = v
			}
			resp, b := envoyHTTP(t, srv.URL, tc.method, "mail.internal", tc.path, h)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
		})
	}
}
