package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// TestHeaderLimitIsExact: the request line plus headers may be at most
// MaxHeaderBytes (docs/gateway.md: "at most 60 KiB" by default), counted
// as they are on the wire — the request line, the Host line and each
// header line with its CRLF, without the blank line that ends them: a
// request of exactly the limit is forwarded, one byte more is a 431.
func TestHeaderLimitIsExact(t *testing.T) {
	t.Parallel()
	const limit = 8 << 10
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL), MaxHeaderBytes: limit})
	// request is the request whose line and headers take n bytes.
	request := func(n int) string {
		head := "GET /proxy/docs?page=2 HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer " + tok + "\r\nX-Pad: "
		return head + strings.Repeat("p", n-len(head)-len("\r\n")) + "\r\n\r\n"
	}
	tests := []struct {
		name   string
		bytes  int
		status int
	}{
		{"exactly the limit", limit, http.StatusOK},
		{"one byte more", limit + 1, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := raw(t, gw, request(tc.bytes))
			if res.Status != tc.status {
				t.Fatalf("%d bytes of request line and headers: status %d %s, want %d", tc.bytes, res.Status, res.Body, tc.status)
			}
			if tc.status != http.StatusOK && res.json(t)["error"] != "headers_too_large" {
				t.Fatalf("body %s", res.Body)
			}
		})
	}
	if n := len(up.requests()); n != 1 {
		t.Fatalf("upstream received %d requests, want the one within the limit", n)
	}
}

// TestOnlyA405NamesTheAllowedMethods: CONNECT is refused with 405 and,
// as RFC 9110 requires of a 405, an Allow header listing the methods the
// gateway forwards; the gateway's other refusals carry no Allow header.
func TestOnlyA405NamesTheAllowedMethods(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	auth := bearer(tok) + "\r\n"
	tests := []struct {
		name, request string
		status        int
		allow         string
	}{
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n" + auth + "\r\n", 405, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"},
		{"outside /proxy", "GET /admin HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 404, ""},
		{"a dot segment", "GET /proxy/./x HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := raw(t, gw, tc.request)
			if res.Status != tc.status || res.Header.Get("Allow") != tc.allow {
				t.Fatalf("status %d, Allow %q; want %d, %q", res.Status, res.Header.Get("Allow"), tc.status, tc.allow)
			}
		})
	}
}
