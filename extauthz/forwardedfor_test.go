package extauthz

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/meshguard/meshguard/internal/edge/edgetest"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/store"
)

// TestHTTPClientAddressFromForwardedFor: over HTTP ext_authz the caller's
// address recorded in the audit trail is edge.ClientAddr's — the entry
// the loopback proxy (here, the test, whose connection is loopback)
// appended, never one the client wrote before it. It used to be the
// leftmost entry: "X-Forwarded-For: 1.2.3.4" from the client was recorded
// as the caller. The gateway's counterpart is
// gateway TestClientAddressFromForwardedFor.
func TestHTTPClientAddressFromForwardedFor(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	srv := startHTTP(t, m.f.Engine, testLog(t, nil))
	tests := edgetest.ForwardedForCases
	for i, tc := range tests {
		t.Run(tc.Name, func(t *testing.T) {
			traceID := fmt.Sprintf("%032x", i+1)
			req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+PathPrefix+"/docs/readme", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "docs.internal:8080"
			req.Header.Set("Authorization", "Bearer "+m.resT)
			req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
			for _, l := range tc.Lines {
				req.Header.Add("X-Forwarded-For", l)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			// The mesh's researcher may be rate limited (429) before the
			// table ends; that decision is recorded all the same.
			if resp.StatusCode != 200 && resp.StatusCode != 429 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			page, err := m.f.Store.QueryAudit(t.Context(), store.AuditFilter{TraceID: traceID})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Records) != 1 || page.Records[0].SourceAddress != tc.Want {
				t.Fatalf("source addresses %q, want [%s]", addrs(page.Records), tc.Want)
			}
		})
	}
}

// addrs are the source addresses of records.
func addrs(rs []audit.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.SourceAddress
	}
	return out
}
