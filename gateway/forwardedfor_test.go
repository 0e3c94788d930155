package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// TestClientAddressFromForwardedFor: the client address the gateway
// records (and rate-limits by) is wire.ClientAddr's, the same as HTTP
// ext_authz's (extauthz TestHTTPClientAddressFromForwardedFor): the test's
// connection is loopback, so it plays the local proxy that appended the
// rightmost entry, and whatever the client wrote before that is never
// read. The upstream gets the chain as received with the peer appended.
func TestClientAddressFromForwardedFor(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	c := newClient(t)
	tests := []struct {
		name  string
		lines []string // X-Forwarded-For header lines, in order
		want  string
	}{
		{"client-prepended entry", []string{"1.2.3.4, 198.51.100.7"}, "198.51.100.7"},
		{"client line, then the proxy's", []string{"1.2.3.4", "198.51.100.7"}, "198.51.100.7"},
		{"two local proxies", []string{"1.2.3.4, 198.51.100.7", "127.0.0.1"}, "198.51.100.7"},
		{"garbage appended: the peer", []string{"1.2.3.4, not-an-ip"}, "127.0.0.1"},
		{"garbage left of the client", []string{"<script>, 198.51.100.7"}, "198.51.100.7"},
		{"IPv6 with a port", []string{"1.2.3.4, [2001:db8::7]:443"}, "2001:db8::7"},
		{"all trusted: the leftmost", []string{"127.0.0.9, ::1"}, "127.0.0.9"},
		{"no header: the peer", nil, "127.0.0.1"},
	}
	for i, tc := range tests {
		traceID := fmt.Sprintf("%032x", i+1)
		headers := []string{bearer(tok), "Traceparent: 00-" + traceID + "-00f067aa0ba902b7-01"}
		for _, l := range tc.lines {
			headers = append(headers, "X-Forwarded-For: "+l)
		}
		if res := call(t, c, "GET", gw+"/proxy/docs/readme", headers...); res.Status != http.StatusOK {
			t.Fatalf("%s: status %d %s", tc.name, res.Status, res.Body)
		}
		page, err := f.Store.QueryAudit(t.Context(), store.AuditFilter{TraceID: traceID})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != 1 || page.Records[0].SourceAddress != tc.want {
			t.Errorf("%s: source addresses %q, want [%s]", tc.name, addrs(page.Records), tc.want)
		}
		wantChain := strings.Join(append(tc.lines, "127.0.0.1"), ", ")
		if got := up.last(t).Header.Get("X-Forwarded-For"); got != wantChain {
			t.Errorf("%s: upstream X-Forwarded-For %q, want %q", tc.name, got, wantChain)
		}
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
