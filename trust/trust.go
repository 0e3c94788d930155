// Package trust defines the four agent trust tiers and their ordering.
//
// It is deliberately tiny and dependency-free: the policy engine (which also
// runs inside the proxy-wasm filter) and the identity package both need tiers,
// and neither should pull the other in to get them.
package trust

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Tier is an agent's trust tier. The zero value is Untrusted, the lowest tier,
// so an unset tier never grants more than the least-trusted agent has.
type Tier uint8

// The tiers, lowest to highest. Their numeric order is their trust order.
const (
	Untrusted Tier = iota
	Verified
	Trusted
	Privileged
)

// ErrUnknownTier is returned by Parse for anything that is not a tier name.
var ErrUnknownTier = errors.New("unknown trust tier")

// names holds the canonical tier names, indexed by Tier.
var names = [...]string{"untrusted", "verified", "trusted", "privileged"}

// Names returns the canonical tier names, lowest first.
func Names() []string { return append([]string(nil), names[:]...) }

// Parse reads a tier name. "unverified" is accepted as a synonym of
// "untrusted" for compatibility with the hosted product; matching is exact
// (case-sensitive), as in the rest of the policy language.
func Parse(s string) (Tier, error) {
	switch s {
	case "untrusted", "unverified":
		return Untrusted, nil
	case "verified":
		return Verified, nil
	case "trusted":
		return Trusted, nil
	case "privileged":
		return Privileged, nil
	}
	return Untrusted, fmt.Errorf("%w %q (expected one of untrusted, verified, trusted, privileged)", ErrUnknownTier, s)
}

// String returns the canonical name of the tier.
func (t Tier) String() string {
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("tier(%d)", uint8(t))
}

// Valid reports whether t is one of the four tiers.
func (t Tier) Valid() bool { return int(t) < len(names) }

// Min returns the lower of two tiers. The effective tier of a request is the
// lower of the token's tier and the agent's current tier, so a demotion takes
// effect before the old token expires.
func Min(a, b Tier) Tier {
	if a < b {
		return a
	}
	return b
}

// MarshalText encodes the canonical name.
func (t Tier) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnknownTier, uint8(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText decodes a tier name, accepting the "unverified" synonym.
func (t *Tier) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

var _ json.Marshaler = Tier(0)

// MarshalJSON encodes the tier as its name.
func (t Tier) MarshalJSON() ([]byte, error) {
	b, err := t.MarshalText()
	if err != nil {
		return nil, err
	}
	return json.Marshal(string(b))
}
