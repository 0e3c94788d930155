package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// TestCallerTrailersDoNotReachTheUpstream: a chunked request may declare
// trailers (Trailer: X-MeshGuard-Agent-Id) and send them after its body,
// where no decision looked, and an upstream that merges trailers into
// headers would read them as headers MeshGuard set. The gateway forwards
// none of them: neither the values nor the declaration (which used to
// reach the upstream as names with empty values).
func TestCallerTrailersDoNotReachTheUpstream(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	agent, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	var (
		mu       sync.Mutex
		trailers http.Header
		declared []string
	)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // trailers arrive after the body
		mu.Lock()
		trailers, declared = r.Trailer.Clone(), r.Header.Values("Trailer")
		mu.Unlock()
		_, _ = io.WriteString(w, "upstream ok")
	})
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})

	tests := []struct {
		name, declare, trailer string
	}{
		{"an identity header", "X-MeshGuard-Agent-Id", "X-MeshGuard-Agent-Id: agent_admin"},
		{"the tier, with underscores", "X_MeshGuard_Tier", "X_MeshGuard_Tier: privileged"},
		{"a credential", "Authorization", "Authorization: Bearer forged"},
		{"a forwarding header", "X-Forwarded-For", "X-Forwarded-For: 10.0.0.1"},
		{"an ordinary trailer", "X-Checksum", "X-Checksum: abc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := raw(t, gw, "POST /proxy/api/notes HTTP/1.1\r\nHost: gw\r\n"+bearer(tok)+"\r\n"+
				"Transfer-Encoding: chunked\r\nTrailer: "+tc.declare+"\r\n\r\n"+
				"5\r\nhello\r\n0\r\n"+tc.trailer+"\r\n\r\n")
			if res.Status != http.StatusOK {
				t.Fatalf("status %d: %s", res.Status, res.Body)
			}
			got := up.last(t)
			mu.Lock()
			defer mu.Unlock()
			if len(trailers) != 0 || len(declared) != 0 {
				t.Fatalf("the upstream got trailers %v (declared %v)", trailers, declared)
			}
			if id := got.Header.Get("X-Meshguard-Agent-Id"); id != agent.ID {
				t.Fatalf("x-meshguard-agent-id %q, want %q", id, agent.ID)
			}
			if strings.Contains(headerFold(got.Header, "Authorization"), "forged") {
				t.Fatal("the forged credential reached the upstream")
			}
		})
	}
}
