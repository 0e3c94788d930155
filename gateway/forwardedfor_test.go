package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/internal/edge/edgetest"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// TestClientAddressFromForwardedFor: the client address the gateway
// records (and rate-limits by) is edge.ClientAddr's, the same as HTTP
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
	tests := edgetest.ForwardedForCases
	for i, tc := range tests {
		traceID := fmt.Sprintf("%032x", i+1)
		headers := []string{bearer(tok), "Traceparent: 00-" + traceID + "-00f067aa0ba902b7-01"}
		for _, l := range tc.Lines {
			headers = append(headers, "X-Forwarded-For: "+l)
		}
		if res := call(t, c, "GET", gw+"/proxy/docs/readme", headers...); res.Status != http.StatusOK {
			t.Fatalf("%s: status %d %s", tc.Name, res.Status, res.Body)
		}
		page, err := f.Store.QueryAudit(t.Context(), store.AuditFilter{TraceID: traceID})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != 1 || page.Records[0].SourceAddress != tc.Want {
			t.Errorf("%s: source addresses %q, want [%s]", tc.Name, addrs(page.Records), tc.Want)
		}
		wantChain := strings.Join(append(tc.Lines, "127.0.0.1"), ", ")
		if got := up.last(t).Header.Get("X-Forwarded-For"); got != wantChain {
			t.Errorf("%s: upstream X-Forwarded-For %q, want %q", tc.Name, got, wantChain)
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

// TestForwardingHeadersAreTheGateways: X-Forwarded-For, -Host and -Proto
// reach the upstream as the gateway writes them, and the engine decides
// on those values. The caller's own, in any spelling an upstream reads as
// them (X_Forwarded_For, which CGI and WSGI servers read as
// X-Forwarded-For), and its Forwarded header never reach the upstream or
// a policy: "X-Forwarded-Proto: https" over plain HTTP was decided as
// https while the upstream read http, and X_Forwarded_For from a remote
// client reached the upstream beside the gateway's X-Forwarded-For.
func TestForwardingHeadersAreTheGateways(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, `
name: tls-writes
appliesTo: {tags: [writer]}
rules:
  - name: https-only
    effect: deny
    actions: ["write:*"]
    conditions: {context: {header.x-forwarded-proto: {not_matches: https}}}
  - {name: work, effect: allow, actions: ["read:*", "write:*"]}
`, enginetest.Options{})
	_, tok := f.Agent(t, "writer", trust.Verified, []string{"writer"})
	up := newUpstream(t, nil)
	gw, err := gateway.New(gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	forged := []string{
		"X-Forwarded-For: 10.0.0.1", "X_Forwarded_For: 10.0.0.1", "x_forwarded_for: 10.0.0.2",
		"X-Forwarded-Host: admin.internal", "X_Forwarded_Host: admin.internal",
		"X-Forwarded-Proto: https", "X_Forwarded_Proto: https", "Forwarded: for=10.0.0.1;proto=https", "FORWARDED: for=10.0.0.1",
	}
	tests := []struct {
		name, method, remote string
		headers              []string
		status               int
		xff                  string // X-Forwarded-For at the upstream
	}{
		{"a plain write", "POST", "203.0.113.9:4711", nil, http.StatusForbidden, ""},
		{"a write claiming https", "POST", "203.0.113.9:4711", []string{"X-Forwarded-Proto: https"}, http.StatusForbidden, ""},
		{"a write claiming https, '_' for '-'", "POST", "203.0.113.9:4711", []string{"X_Forwarded_Proto: https"}, http.StatusForbidden, ""},
		{"a write claiming https by Forwarded", "POST", "203.0.113.9:4711", []string{"Forwarded: proto=https"}, http.StatusForbidden, ""},
		{"a read from a remote client with X_Forwarded_For", "GET", "203.0.113.9:4711", []string{"X_Forwarded_For: 10.0.0.1"}, http.StatusOK, "203.0.113.9"},
		{"a read from a remote client with forged headers", "GET", "203.0.113.9:4711", forged, http.StatusOK, "203.0.113.9"},
		{"a read through a local proxy with forged headers", "GET", "127.0.0.1:4711", forged, http.StatusOK, "10.0.0.1, 127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/proxy/api/items", nil)
			r.Host = "gw.example"
			r.RemoteAddr = tc.remote
			r.Header.Set("Authorization", "Bearer "+tok)
			for _, h := range tc.headers {
				k, v, _ := strings.Cut(h, ": ")
				r.Header[k] = append(r.Header[k], v) // as sent: no canonicalisation
			}
			w := httptest.NewRecorder()
			gw.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != http.StatusOK {
				if reqs := up.requests(); len(reqs) != 0 {
					t.Fatalf("a denied request reached the upstream: %+v", reqs)
				}
				return
			}
			got := up.last(t).Header
			want := map[string]string{
				"X-Forwarded-For": tc.xff, "X-Forwarded-Host": "gw.example", "X-Forwarded-Proto": "http", "Forwarded": "",
				"X_Forwarded_For": "", "X_Forwarded_Host": "", "X_Forwarded_Proto": "",
			}
			for name, v := range want {
				if g := headerFold(got, name); g != v {
					t.Errorf("the upstream received %s %q, want %q", name, g, v)
				}
			}
		})
	}
}
