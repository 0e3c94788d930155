package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/internal/edge"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, remote string
		xff          []string
		want         string
		trusted      bool
		key          string
	}{
		{"peer", "203.0.113.9:4711", nil, "203.0.113.9", false, "gateway/ip/203.0.113.9"},
		{"forwarded-for from a remote peer is ignored", "203.0.113.9:4711", []string{"198.51.100.1"}, "203.0.113.9", false, "gateway/ip/203.0.113.9"},
		{"loopback peer without the header", "127.0.0.1:4711", nil, "127.0.0.1", true, "gateway/ip/127.0.0.1"},
		{"loopback proxy: its rightmost entry", "127.0.0.1:4711", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1", true, "gateway/ip/198.51.100.1"},
		{"loopback proxy: last of several headers", "[::1]:4711", []string{"6.6.6.6", "198.51.100.2"}, "198.51.100.2", true, "gateway/ip/198.51.100.2"},
		{"entry with a port", "127.0.0.1:4711", []string{"198.51.100.3:5555"}, "198.51.100.3", true, "gateway/ip/198.51.100.3"},
		{"garbage entry: the peer", "127.0.0.1:4711", []string{"198.51.100.1, not-an-ip"}, "127.0.0.1", true, "gateway/ip/127.0.0.1"},
		{"IPv6 client: its /64", "[2001:db8:1:2:3:4:5:6]:4711", nil, "2001:db8:1:2:3:4:5:6", false, "gateway/ip/2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6", "[::ffff:203.0.113.9]:4711", nil, "203.0.113.9", false, "gateway/ip/203.0.113.9"},
		{"unix socket", "@", nil, "invalid IP", false, "gateway/ip/unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/proxy/x", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != nil {
				r.Header["X-Forwarded-For"] = tc.xff
			}
			a, trusted := clientAddr(r)
			if a.String() != tc.want || trusted != tc.trusted || limitKey(a) != tc.key {
				t.Errorf("got %s trusted=%v key %q, want %s trusted=%v key %q", a, trusted, limitKey(a), tc.want, tc.trusted, tc.key)
			}
		})
	}
}

func TestTraceID(t *testing.T) {
	t.Parallel()
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name string
		vs   []string
		want string
	}{
		{"valid", []string{"00-" + id + "-00f067aa0ba902b7-01"}, id},
		{"future version with more fields", []string{"01-" + id + "-00f067aa0ba902b7-01-extra"}, id},
		{"none", nil, ""},
		{"two headers", []string{"00-" + id + "-00f067aa0ba902b7-01", "00-" + id + "-00f067aa0ba902b7-01"}, ""},
		{"version ff", []string{"ff-" + id + "-00f067aa0ba902b7-01"}, ""},
		{"version 00 with more fields", []string{"00-" + id + "-00f067aa0ba902b7-01-extra"}, ""},
		{"upper case", []string{"00-" + strings.ToUpper(id) + "-00f067aa0ba902b7-01"}, ""},
		{"zero trace id", []string{"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, ""},
		{"zero parent id", []string{"00-" + id + "-0000000000000000-01"}, ""},
		{"short", []string{"00-" + id[:31] + "-00f067aa0ba902b7-01"}, ""},
		{"bad flags", []string{"00-" + id + "-00f067aa0ba902b7-zz"}, ""},
	}
	g := &Gateway{}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.Header[hTraceparent] = tc.vs
		if got := g.engineRequest(r, "/x", "upstream.internal", netip.Addr{}, nil).TraceID; got != tc.want {
			t.Errorf("%s: trace id of %q = %q, want %q", tc.name, tc.vs, got, tc.want)
		}
	}
}

func TestUpstreamPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target string // request target, parsed as the server does
		want   string // decoded upstream path, or "" when refused
		status int
	}{
		{"/proxy", "/", 0},
		{"/proxy/", "/", 0},
		{"/proxy/a/b/", "/a/b/", 0},
		{"/proxy/a%20b", "/a%20b", 0},
		{"/proxy/a!b%21c%2b%7E", "/a!b%21c%2B~", 0}, // spelled as sent, escapes normalised
		{"/proxy/caf\xc3\xa9\"", "/caf%C3%A9%22", 0},
		{"/proxy/..a/b..", "/..a/b..", 0},
		{"/proxy/a/..", "", 400},
		{"/proxy/a/.", "", 400},
		{"/proxy/%2E%2E/x", "", 400},
		{"/proxy/a//b", "", 400},
		{"/proxy/a%2fb", "", 400},
		{"/proxy/a%5Cb", "", 400},
		{"/proxy/a%23b", "", 400},
		{"/proxy/a%0Ab", "", 400},
		{"/proxy/a%7Fb", "", 400},
		{"/proxyx", "", 404},
		{"/other/proxy/x", "", 404},
	}
	for _, tc := range tests {
		u, err := url.ParseRequestURI(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		got, status, msg := upstreamPath(u)
		if got != tc.want || status != tc.status || (status != 0) != (msg != "") {
			t.Errorf("upstreamPath(%q) = %q, %d, %q; want %q, %d", tc.target, got, status, msg, tc.want, tc.status)
		}
	}
}

func TestHeaderChecks(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"X-Meshguard-Agent-Id": true, "x-meshguard-chain": true, "X_MeshGuard_Tier": true,
		"X-MESHGUARD-": true, "X-Meshguard": false, "X-Meshguardian-Id": false, "Authorization": false,
	} {
		if got := edge.IsMeshGuardHeader(name); got != want {
			t.Errorf("IsMeshGuardHeader(%q) = %v", name, got)
		}
	}
	for _, tc := range []struct {
		value, want string
	}{
		{"Bearer abc", "abc"}, {"bearer  abc ", "abc"}, {"Basic abc", ""}, {"Bearer", ""}, {"", ""},
	} {
		if got := bearer([]string{tc.value}); got != tc.want {
			t.Errorf("bearer(%q) = %q, want %q", tc.value, got, tc.want)
		}
	}
	r := httptest.NewRequest("GET", "/proxy/x", nil)
	r.Header.Set("X-Big", strings.Repeat("a", 1000))
	if headersExceed(r, 2000) || !headersExceed(r, 1000) {
		t.Error("headersExceed does not count the header")
	}
}

func TestRequestForTheEngine(t *testing.T) {
	t.Parallel()
	g := &Gateway{}
	r := httptest.NewRequest("PATCH", "http://gw.local/proxy/caf%C3%A9/%61pi?x=%2F", nil)
	r.Header = http.Header{
		"Authorization":          {"Bearer tok"},
		"X-Meshguard-Delegation": {"del"},
		"X-Meshguard-Action":     {"write:x"},
		"X-Meshguard-Resource":   {"res"},
		"X-Meshguard-Context":    {`{"k":1}`},
		"Traceparent":            {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
	path, _, _ := upstreamPath(r.URL)
	got := g.engineRequest(r, path, "api.internal:8080", netip.MustParseAddr("198.51.100.1"), nil)
	if got.Source != "gateway" || got.Token != "tok" || got.Delegation != "del" || got.Method != "PATCH" ||
		got.Host != "api.internal:8080" || got.Path != "/caf%C3%A9/api?x=%2F" || got.Action != "" ||
		got.Resource != "" || got.Context != nil || got.SourceAddress != "198.51.100.1" ||
		got.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("engine request %+v", got)
	}
	if v, n := got.Headers.Lookup("x-meshguard-context"); v != `{"k":1}` || n != 1 {
		t.Errorf("the request's headers: %q %d", v, n)
	}
}
