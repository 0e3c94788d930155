package edge

import (
	"net/netip"
	"strings"
)

// MaxForwardedHops bounds how many X-Forwarded-For entries ClientAddr
// walks: a header of 60 KiB holds thousands of "127.0.0.1," entries, and
// no real chain of proxies on one machine is longer than a few.
const MaxForwardedHops = 16

// TrustedProxy reports whether a is a proxy whose X-Forwarded-For entry
// is believed: a loopback address, a proxy on MeshGuard's own machine
// (a sidecar Envoy, nginx) that the operator put there. Anyone else could
// write any X-Forwarded-For.
func TrustedProxy(a netip.Addr) bool { return a.IsLoopback() }

// ClientAddr returns the address of the client behind peer, the TCP peer,
// given the request's X-Forwarded-For header lines in the order they came.
// It is the one rule every enforcement point uses (docs/gateway.md#client-address):
//
// Each proxy appends the address it received the request from, so the
// entries are read right to left, starting at the peer: while the current
// hop is a trusted proxy (TrustedProxy), the entry it appended is the hop
// before it. The client is the first hop that is not a trusted proxy. The
// entries left of it were written by the client or by proxies nobody
// vouches for, and are never read, so a client that sends
// "X-Forwarded-For: 1.2.3.4" gets no say: the proxy appends its real
// address and that is taken.
//
// Several header lines are one list (RFC 9110, 5.3); empty list elements
// are skipped. An entry that is no IP address (with or without a port)
// ends the walk at the hop that appended it, as does MaxForwardedHops; if
// every entry is a trusted proxy, the client is the leftmost of them.
// The result has no zone and IPv4-mapped IPv6 addresses unmapped; it is
// the zero Addr only when peer is.
func ClientAddr(peer netip.Addr, xff ...string) netip.Addr {
	cur := peer.Unmap().WithZone("")
	hops := 0
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			if !cur.IsValid() || !TrustedProxy(cur) {
				return cur
			}
			entry := line
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				entry, line = line[j+1:], line[:j]
			} else {
				line = ""
			}
			entry = strings.Trim(entry, " \t")
			if entry == "" {
				continue
			}
			a := ParseAddr(entry)
			if !a.IsValid() || hops == MaxForwardedHops {
				return cur
			}
			cur = a
			hops++
		}
	}
	return cur
}

// ParseAddr reads "ip", "ip:port" or "[ip]:port" (and "[ipv6]"), without
// its zone and with IPv4-mapped IPv6 addresses unmapped; the zero Addr if
// s is none of these.
func ParseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	bracketed := len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']'
	if bracketed {
		s = s[1 : len(s)-1]
	}
	if a, err := netip.ParseAddr(s); err == nil && (!bracketed || a.Is6()) {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}
