package gateway

import (
	"crypto/tls"

	"github.com/meshguard/meshguard/identity"
)

// peerPrincipal is the SPIFFE ID of the client's certificate when the
// gateway is served over mutual TLS: the one URI SAN of the leaf of a
// verified chain, if it is a valid SPIFFE ID (an X.509-SVID has exactly
// one URI SAN). Anything else gives "", and the request needs a token:
//
//   - no TLS, or a certificate the server did not verify (ClientAuth of
//     RequestClientCert or RequireAnyClientCert leaves VerifiedChains empty:
//     anyone can present any certificate);
//   - a leaf with no URI SAN, with several, or with one that is not a
//     SPIFFE ID.
//
// No header is ever read as an identity.
func peerPrincipal(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	leaf := cs.VerifiedChains[0][0]
	if len(leaf.URIs) != 1 {
		return ""
	}
	id := leaf.URIs[0].String()
	if !identity.ValidSPIFFEID(id) {
		return ""
	}
	return id
}
