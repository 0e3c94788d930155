package identity

import (
	"testing"
	"time"
)

// BenchmarkVerifyDelegationUncached: the full check of a two-actor
// delegation token, as a cache miss pays it.
func BenchmarkVerifyDelegationUncached(b *testing.B) {
	e := newTestEnv(b, AlgEdDSA)
	tok, _, err := e.issuer.Delegate(DelegationGrant{Root: e.agent.ID, Actors: []string{NewAgentID(), NewAgentID()},
		Scope: []string{"read:*", "write:email"}, ExpiresAt: e.clock.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.verifier.VerifyDelegation(tok); err != nil {
			b.Fatal(err)
		}
	}
}
