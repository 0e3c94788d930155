package gateway_test

import (
	"net/http"
	"testing"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// TestDecidesOnTheHeadersForwarded: a header the caller names in
// Connection is hop-by-hop, and the gateway removes it before the
// upstream. The engine must not decide on it: "X-Env: staging" with
// "Connection: X-Env" would be allowed as a staging write while the
// upstream, seeing no X-Env, writes wherever its default points.
func TestDecidesOnTheHeadersForwarded(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, `
name: envs
appliesTo: {tags: [writer]}
rules:
  - name: staging-writes
    effect: allow
    actions: ["write:*"]
    conditions: {context: {header.x-env: {matches: staging}}}
`, enginetest.Options{})
	_, tok := f.Agent(t, "writer", trust.Verified, []string{"writer"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	c := newClient(t)
	tests := []struct {
		name    string
		headers []string
		status  int
		env     string // X-Env as the upstream receives it, when allowed
	}{
		{"x-env sent", []string{"X-Env: staging"}, http.StatusOK, "staging"},
		{"x-env named in Connection", []string{"X-Env: staging", "Connection: X-Env"}, http.StatusForbidden, ""},
		{"x-env named in Connection in lower case", []string{"X-Env: staging", "Connection: keep-alive, x-env"}, http.StatusForbidden, ""},
		{"x-env named in a second Connection header", []string{"X-Env: staging", "Connection: keep-alive", "Connection: x-env"}, http.StatusForbidden, ""},
		{"another header named in Connection", []string{"X-Env: staging", "Connection: X-Other", "X-Other: 1"}, http.StatusOK, "staging"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, c, "POST", gw+"/proxy/api/items", append([]string{bearer(tok)}, tc.headers...)...)
			if res.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.Status, tc.status, res.Body)
			}
			reqs := up.requests()
			if tc.status != http.StatusOK {
				if len(reqs) != 0 {
					t.Fatalf("a denied request reached the upstream: %+v", reqs)
				}
				return
			}
			if got := up.last(t); got.Header.Get("X-Env") != tc.env {
				t.Fatalf("upstream X-Env %q, want %q", got.Header.Get("X-Env"), tc.env)
			}
		})
	}
}
