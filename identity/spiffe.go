package identity

import (
	"fmt"
	"strings"
)

// Limits on an agent's SPIFFE IDs (the SPIFFE ID specification bounds an
// ID at 2048 bytes and its trust domain at 255).
const (
	MaxSPIFFEIDs        = 16
	MaxSPIFFEIDLen      = 2048
	maxTrustDomainLen   = 255
	spiffeScheme        = "spiffe://"
	spiffeIDExpectation = "expected spiffe://<trust domain>/<path>: a lower-case trust domain of a-z 0-9 . - _, path segments of A-Z a-z 0-9 . - _ (none empty, none . or ..), no port, user, query or fragment"
)

// ValidSPIFFEID reports whether id is a SPIFFE ID as the SPIFFE ID
// specification defines it. It is strict on purpose: a principal is
// matched to an agent byte for byte, so there must be one spelling of each
// identity (no upper-case trust domain, no percent-encoding, no trailing
// slash).
func ValidSPIFFEID(id string) bool { return checkSPIFFEID(id) == nil }

// checkSPIFFEID says what is wrong with a SPIFFE ID; Validate wraps it in
// ErrInvalidAgent.
func checkSPIFFEID(id string) error {
	if len(id) > MaxSPIFFEIDLen {
		return fmt.Errorf("longer than %d bytes", MaxSPIFFEIDLen)
	}
	rest, ok := strings.CutPrefix(id, spiffeScheme)
	if !ok {
		return fmt.Errorf("%q: %s", id, spiffeIDExpectation)
	}
	td, path, _ := strings.Cut(rest, "/")
	if td == "" || len(td) > maxTrustDomainLen {
		return fmt.Errorf("%q: the trust domain must be 1 to %d characters", id, maxTrustDomainLen)
	}
	for i := 0; i < len(td); i++ {
		if c := td[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("%q: trust domain character %q: %s", id, c, spiffeIDExpectation)
		}
	}
	if len(rest) == len(td) {
		return nil // spiffe://trust.domain: the trust domain's own ID
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%q: empty or dot path segment: %s", id, spiffeIDExpectation)
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
				return fmt.Errorf("%q: path character %q: %s", id, c, spiffeIDExpectation)
			}
		}
	}
	return nil
}
