package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// TestDecidesOnTheQueryForwarded: the upstream receives the query string
// the engine decided on, byte for byte. httputil.ReverseProxy re-encodes a
// query it cannot parse (a malformed escape, a ';') before the gateway's
// Rewrite runs, dropping the pairs it cannot read and sorting the rest:
// "?mode=soft&x=%zz" was decided as sent and reached the upstream as
// "?mode=soft". (Over 10,000 parameters it drops the whole query; the
// engine's 8 KiB bound on the path and query refuses those first.)
func TestDecidesOnTheQueryForwarded(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, `
name: deletes
appliesTo: {tags: [cleaner]}
rules:
  - name: soft-only
    effect: deny
    actions: ["delete:*"]
    conditions: {context: {query.mode: {not_matches: soft}}}
  - {name: work, effect: allow, actions: ["*"]}
`, enginetest.Options{})
	_, tok := f.Agent(t, "cleaner", trust.Verified, []string{"cleaner"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	c := newClient(t)
	tests := []struct {
		name, query string
		status      int
	}{
		{"soft delete", "mode=soft", http.StatusOK},
		{"no mode", "x=1", http.StatusForbidden},
		{"parameters in their order", "z=1&mode=soft&a=2", http.StatusOK},
		{"a malformed escape in a parameter no policy reads", "mode=soft&x=%zz", http.StatusOK},
		{"the same, parameters out of order", "z=1&mode=soft&y=%zz", http.StatusOK},
		// ReverseProxy drops a query of over 10,000 parameters; the
		// engine refuses a path and query of over 8 KiB first.
		{"more parameters than ReverseProxy parses", "mode=soft" + strings.Repeat("&", 10000), http.StatusBadRequest},
		{"a ';' where a policy reads the query", "mode=soft;mode=hard", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, c, "DELETE", gw+"/proxy/items/1?"+tc.query, bearer(tok))
			if res.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.Status, tc.status, res.Body)
			}
			if tc.status != http.StatusOK {
				if reqs := up.requests(); len(reqs) != 0 {
					t.Fatalf("a refused request reached the upstream: %+v", reqs)
				}
				return
			}
			if got := up.last(t).RawQuery; got != tc.query {
				t.Fatalf("the upstream received the query %.80q, the engine decided on %.80q", got, tc.query)
			}
		})
	}
}
