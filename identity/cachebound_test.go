package identity

import (
	"fmt"
	"testing"
	"time"
)

// TestDelegationCacheBound: MaxEntries bounds the delegation tokens a
// CachedVerifier keeps as it bounds agent tokens (docs/identity.md, "Bounded").
// The sizes cover one shard (below 256) and sixteen.
func TestDelegationCacheBound(t *testing.T) {
	for _, max := range []int{7, 300} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			e, c := newCachedEnv(t, CacheConfig{MaxEntries: max})
			root, actor := NewAgentID(), NewAgentID()
			for i := range 2*max + 20 {
				tok, _, err := e.issuer.Delegate(DelegationGrant{Root: root, Actors: []string{actor},
					Scope: []string{fmt.Sprintf("read:%d", i)}, MaxChain: 1, ExpiresAt: e.clock.Now().Add(time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.VerifyDelegation(tok); err != nil {
					t.Fatalf("VerifyDelegation: %v", err)
				}
				if n := c.grants.len(); n > max {
					t.Fatalf("%d delegation tokens cached, bound %d", n, max)
				}
			}
			if n := c.grants.len(); n == 0 {
				t.Fatal("no delegation token was cached")
			}
		})
	}
}
