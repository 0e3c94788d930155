package identity

import (
	"strings"
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

// BenchmarkCheckMembers: the duplicate-member walk alone, over an issued
// agent token's header and claims (what it adds to every uncached Verify).
func BenchmarkCheckMembers(b *testing.B) {
	e := newTestEnv(b, AlgEdDSA)
	tok, _ := e.issue(b)
	parts := strings.Split(tok, ".")
	hdr, err := b64.DecodeString(parts[0])
	if err != nil {
		b.Fatal(err)
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if checkMembers(hdr, headerNames) != nil || checkMembers(payload, agentClaimNames) != nil {
			b.Fatal("an issued token refused")
		}
	}
}
