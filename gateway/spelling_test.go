package gateway_test

import (
	"net/http"
	"testing"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// TestOtherSpellingsAtTheGateway: requests an upstream reads otherwise
// than a literal reading does — a parameter as to[], a header as X_Env, a
// POST as the DELETE its override names, a method in lower case — are
// refused with 400 and never forwarded; the plain request passes.
func TestOtherSpellingsAtTheGateway(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, `
name: mail
appliesTo: {tags: [writer]}
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
`, enginetest.Options{})
	_, tok := f.Agent(t, "writer", trust.Verified, []string{"writer"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	c := newClient(t)
	tests := []struct {
		name, method, path string
		headers            []string
		status             int
	}{
		{"the plain request", "POST", "/proxy/mail/send?to=a@example.com", []string{"X-Env: staging"}, http.StatusOK},
		{"to[] beside to", "POST", "/proxy/mail/send?to=a@example.com&to[]=eve@evil.test", []string{"X-Env: staging"}, http.StatusBadRequest},
		{"TO beside to", "POST", "/proxy/mail/send?to=a@example.com&TO=eve@evil.test", []string{"X-Env: staging"}, http.StatusBadRequest},
		{"X_Env beside X-Env", "POST", "/proxy/mail/send?to=a@example.com", []string{"X-Env: staging", "X_Env: prod"}, http.StatusBadRequest},
		{"X_Env alone", "POST", "/proxy/mail/send?to=a@example.com", []string{"X_Env: prod"}, http.StatusForbidden},
		{"a POST overridden to DELETE", "POST", "/proxy/mail/1?to=a@example.com", []string{"X-Env: staging", "X-HTTP-Method-Override: DELETE"}, http.StatusBadRequest},
		{"a POST overridden by _method", "POST", "/proxy/mail/1?to=a@example.com&_method=DELETE", []string{"X-Env: staging"}, http.StatusBadRequest},
		{"a method in lower case", "post", "/proxy/mail/send?to=a@example.com", []string{"X-Env: staging"}, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, c, tc.method, gw+tc.path, append([]string{bearer(tok)}, tc.headers...)...)
			if res.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.Status, tc.status, res.Body)
			}
			if n := len(up.requests()); (n == 1) != (tc.status == http.StatusOK) {
				t.Fatalf("the upstream received %d requests", n)
			}
			if tc.status == http.StatusOK {
				up.last(t)
			}
		})
	}
}
