package edge

import (
	"net/netip"
	"strings"
	"testing"
)

// TestClientAddr: the X-Forwarded-For rule every enforcement point uses.
// The peer is the TCP peer; a loopback peer is a trusted proxy.
func TestClientAddr(t *testing.T) {
	t.Parallel()
	const real = "198.51.100.7" // the address the trusted proxy saw
	tests := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no header: the peer", "127.0.0.1", nil, "127.0.0.1"},
		{"a remote peer's header is never read", "203.0.113.9", []string{"198.51.100.1"}, "203.0.113.9"},
		{"a remote peer behind a loopback proxy", "127.0.0.1", []string{real}, real},
		{"client-prepended entry: the proxy's appended one counts", "127.0.0.1", []string{"1.2.3.4, " + real}, real},
		{"client-prepended line, proxy's own line", "127.0.0.1", []string{"1.2.3.4", real}, real},
		{"a client line after the proxy's is still the rightmost", "127.0.0.1", []string{real, "1.2.3.4"}, "1.2.3.4"},
		{"two proxies on the machine", "::1", []string{"1.2.3.4, " + real, "127.0.0.1"}, real},
		{"IPv4-mapped loopback is a trusted hop", "::ffff:127.0.0.1", []string{"1.2.3.4, " + real + ", ::ffff:127.0.0.1"}, real},
		{"a garbage entry ends the walk at the hop that appended it", "127.0.0.1", []string{real + ", not-an-ip"}, "127.0.0.1"},
		{"garbage left of the client is never read", "127.0.0.1", []string{"not-an-ip, " + real}, real},
		{"garbage between trusted hops", "127.0.0.1", []string{real + ", bogus, 127.0.0.2"}, "127.0.0.2"},
		{"empty list elements are skipped", "127.0.0.1", []string{" , " + real + ",, ", ""}, real},
		{"an entry with a port", "127.0.0.1", []string{real + ":5555"}, real},
		{"IPv6 client", "127.0.0.1", []string{"1.2.3.4, 2001:db8::7"}, "2001:db8::7"},
		{"IPv6 client with a port", "::1", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"IPv6 client in brackets", "::1", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"IPv6 client with a zone", "::1", []string{"fe80::1%eth0"}, "fe80::1"},
		{"IPv4-mapped client", "127.0.0.1", []string{"::ffff:198.51.100.7"}, real},
		{"all trusted: the leftmost", "127.0.0.1", []string{"127.0.0.5, ::1", "127.0.0.2"}, "127.0.0.5"},
		{"bounded: past MaxForwardedHops trusted hops, the last one walked", "127.0.0.1",
			[]string{"1.2.3.4, " + strings.Repeat("127.0.0.3, ", MaxForwardedHops) + "127.0.0.2"}, "127.0.0.3"},
		{"no peer", "", []string{real}, "invalid IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var peer netip.Addr
			if tc.peer != "" {
				peer = netip.MustParseAddr(tc.peer)
			}
			if got := ClientAddr(peer, tc.xff...).String(); got != tc.want {
				t.Errorf("ClientAddr(%s, %q) = %s, want %s", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"198.51.100.7": "198.51.100.7", "198.51.100.7:80": "198.51.100.7", "[2001:db8::7]:80": "2001:db8::7",
		"[2001:db8::7]": "2001:db8::7", "2001:db8::7": "2001:db8::7", "[::ffff:10.0.0.1]:1": "10.0.0.1",
		"fe80::1%eth0": "fe80::1", "": "invalid IP", "unknown": "invalid IP", "[]": "invalid IP",
		"198.51.100.7:": "invalid IP", "1.2.3.4.5": "invalid IP", "[1.2.3.4]:80": "invalid IP", "[1.2.3.4]": "invalid IP",
	} {
		if got := ParseAddr(in).String(); got != want {
			t.Errorf("ParseAddr(%q) = %s, want %s", in, got, want)
		}
	}
}
