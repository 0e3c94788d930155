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

// BenchmarkVerifyDelegationCachedRevocations: a cached delegation hit, the
// token without by_jti (what a hit cost before revocations reached
// delegations) and with two jtis asked of a RevokedSet holding
// MaxRevokedTokens others.
func BenchmarkVerifyDelegationCachedRevocations(b *testing.B) {
	set := NewRevokedSet(nil)
	e := newTestEnv(b, AlgEdDSA, withRevoked(set))
	set.now = e.clock.Now
	list := make([]RevokedToken, MaxRevokedTokens)
	for i := range list {
		list[i] = RevokedToken{JTI: NewAgentID(), AgentID: e.agent.ID, ExpiresAt: e.clock.Now().Add(time.Hour)}
	}
	if err := set.Load(list); err != nil {
		b.Fatal(err)
	}
	c := NewCachedVerifier(e.verifier, CacheConfig{})
	for _, bc := range []struct {
		name string
		by   []string
	}{{"no by_jti", nil}, {"two by_jti", []string{"jti-of-the-root-0001", "jti-of-the-hop-00002"}}} {
		b.Run(bc.name, func(b *testing.B) {
			tok, _, err := e.issuer.Delegate(DelegationGrant{Root: e.agent.ID, Actors: []string{NewAgentID(), NewAgentID()},
				Scope: []string{"read:*", "write:email"}, ExpiresAt: e.clock.Now().Add(time.Hour), ByTokens: bc.by})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.VerifyDelegation(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
