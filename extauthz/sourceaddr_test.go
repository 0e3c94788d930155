package extauthz

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestGRPCSourceAddressIsAnIP: attributes.source.address is recorded as
// the caller's IP and keys per-IP limits, so the engine gets a parsed,
// canonical IP — from an address with or without a port — and never the
// free text a CheckRequest may carry there.
func TestGRPCSourceAddressIsAnIP(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	client := startGRPC(t, rec, testLog(t, nil))
	for _, tc := range []struct{ address, want string }{
		{"10.0.0.7", "10.0.0.7"},
		{"10.0.0.7:49152", "10.0.0.7"},
		{"[2001:db8::7]", "2001:db8::7"},
		{"[2001:db8::7]:443", "2001:db8::7"},
		{"::ffff:10.0.0.7", "10.0.0.7"},
		{"[::ffff:10.0.0.7]:443", "10.0.0.7"},
		{"not an ip", ""},
		{"10.0.0.7:port", ""},
	} {
		t.Run(tc.address, func(t *testing.T) {
			req := envoyCheck(call{method: "GET", host: "crm.internal", path: "/contacts", token: m.mailT})
			req.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: tc.address, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 49152},
			}}}
			allowed(t, check(t, client, req))
			if r, _ := rec.last(); r.SourceAddress != tc.want {
				t.Fatalf("engine source address %q, want %q", r.SourceAddress, tc.want)
			}
		})
	}
}
