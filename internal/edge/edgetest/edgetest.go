// Package edgetest holds the cases every enforcement point that reads
// X-Forwarded-For must decide alike (edge.ClientAddr), so the gateway's
// and HTTP ext_authz's end-to-end tests run one table.
package edgetest

// ForwardedFor is one request: the X-Forwarded-For header lines it
// carries, in order, arriving from a loopback peer (127.0.0.1), and the
// client address that must be recorded.
type ForwardedFor struct {
	Name  string
	Lines []string
	Want  string
}

// ForwardedForCases are the X-Forwarded-For cases, from a loopback peer.
var ForwardedForCases = []ForwardedFor{
	{"client-prepended entry", []string{"1.2.3.4, 198.51.100.7"}, "198.51.100.7"},
	{"client line, then the proxy's", []string{"1.2.3.4", "198.51.100.7"}, "198.51.100.7"},
	{"two local proxies", []string{"1.2.3.4, 198.51.100.7", "127.0.0.1"}, "198.51.100.7"},
	{"garbage appended: the peer", []string{"1.2.3.4, not-an-ip"}, "127.0.0.1"},
	{"garbage left of the client", []string{"<script>, 198.51.100.7"}, "198.51.100.7"},
	{"IPv6 with a port", []string{"1.2.3.4, [2001:db8::7]:443"}, "2001:db8::7"},
	{"all trusted: the leftmost", []string{"127.0.0.9, ::1"}, "127.0.0.9"},
	{"no header: the peer", nil, "127.0.0.1"},
}
