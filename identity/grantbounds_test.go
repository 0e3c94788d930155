package identity

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDelegationGrantBounds holds each bound of a delegation grant
// ("Bounds on what a delegation token may carry") at its value: the bound
// itself mints and verifies back unchanged, one past it is ErrInvalidGrant.
func TestDelegationGrantBounds(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = NewAgentID()
		}
		return out
	}
	scope := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "read:" + strings.Repeat("s", i+1)
		}
		return out
	}
	tests := []struct {
		name string
		edit func(*DelegationGrant)
		ok   bool
	}{
		{"16 actors", func(g *DelegationGrant) { g.Actors = ids(MaxActors) }, true},
		{"17 actors", func(g *DelegationGrant) { g.Actors = ids(MaxActors + 1) }, false},
		{"no actor", func(g *DelegationGrant) { g.Actors = nil }, false},
		{"64 scope entries", func(g *DelegationGrant) { g.Scope = scope(maxScope) }, true},
		{"65 scope entries", func(g *DelegationGrant) { g.Scope = scope(maxScope + 1) }, false},
		{"a scope entry of 1,024 bytes", func(g *DelegationGrant) { g.Scope = []string{"read:" + strings.Repeat("x", maxScopeLen-5)} }, true},
		{"a scope entry of 1,025 bytes", func(g *DelegationGrant) { g.Scope = []string{"read:" + strings.Repeat("x", maxScopeLen-4)} }, false},
		{"an empty scope entry", func(g *DelegationGrant) { g.Scope = []string{""} }, false},
		{"max chain 0", func(g *DelegationGrant) { g.MaxChain = 0 }, true},
		{"max chain 16", func(g *DelegationGrant) { g.MaxChain = MaxActors }, true},
		{"max chain 17", func(g *DelegationGrant) { g.MaxChain = MaxActors + 1 }, false},
		{"max chain -1", func(g *DelegationGrant) { g.MaxChain = -1 }, false},
		{"a token id per delegating agent", func(g *DelegationGrant) { g.Actors, g.ByTokens = ids(MaxActors), ids(MaxActors) }, true},
		{"more token ids than delegating agents", func(g *DelegationGrant) { g.ByTokens = ids(2) }, false},
		{"a token id of 257 characters", func(g *DelegationGrant) { g.ByTokens = []string{strings.Repeat("j", maxJTILen+1)} }, false},
		{"a token id with a space", func(g *DelegationGrant) { g.ByTokens = []string{"a b"} }, false},
		{"lifetime of exactly MaxTTL", func(g *DelegationGrant) {
			g.ExpiresAt = e.clock.Now().Truncate(time.Second).Add(e.keys.Keyring().MaxTTL())
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := DelegationGrant{Root: NewAgentID(), Actors: ids(1), MaxChain: 1, ExpiresAt: e.clock.Now().Add(time.Hour)}
			tc.edit(&g)
			tok, minted, err := e.issuer.Delegate(g)
			if !tc.ok {
				if !errors.Is(err, ErrInvalidGrant) {
					t.Fatalf("Delegate = %v, want ErrInvalidGrant", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Delegate: %v", err)
			}
			got, err := e.verifier.VerifyDelegation(tok)
			if err != nil {
				t.Fatalf("VerifyDelegation of a token at the bound: %v", err)
			}
			if len(got.Actors) != len(minted.Actors) || got.Actor() != minted.Actor() ||
				len(got.Scope) != len(minted.Scope) || got.MaxChain != minted.MaxChain || !slices.Equal(got.ByTokens, minted.ByTokens) {
				t.Fatalf("verified grant %+v differs from minted %+v", got, minted)
			}
		})
	}
}
