package identity

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestInvalidateKeyDropsExactlyThatKeysEntries: InvalidateKey frees the
// entries, agent and delegation tokens alike, verified by the deleted key
// and no others (docs/identity.md, "The verified-token cache").
func TestInvalidateKeyDropsExactlyThatKeysEntries(t *testing.T) {
	ctx := context.Background()
	e, c := newCachedEnv(t, CacheConfig{})
	delegate := func() string {
		tok, _, err := e.issuer.Delegate(DelegationGrant{Root: NewAgentID(), Actors: []string{e.agent.ID},
			Scope: []string{"read:*"}, MaxChain: 1, ExpiresAt: e.clock.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.VerifyDelegation(tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	oldKID, _, _ := e.keys.Keyring().Current()
	old1, _ := e.issue(t)
	old2, _ := e.issue(t)
	mustVerify(t, c, old1)
	mustVerify(t, c, old2)
	delegate()
	if _, err := e.keys.Rotate(ctx, AlgEdDSA); err != nil {
		t.Fatal(err)
	}
	newTok, _ := e.issue(t)
	mustVerify(t, c, newTok)
	delegate()

	if n := c.InvalidateKey(oldKID); n != 3 {
		t.Errorf("InvalidateKey dropped %d entries, want 3 (two agent tokens, one delegation token)", n)
	}
	if c.Len() != 1 || c.grants.len() != 1 {
		t.Errorf("left %d agent and %d delegation tokens cached, want 1 and 1", c.Len(), c.grants.len())
	}
	// The new key's token is still served from the cache: no agent lookup.
	before := e.agents.totalCalls()
	mustVerify(t, c, newTok)
	if n := e.agents.totalCalls() - before; n != 0 {
		t.Errorf("the new key's token was looked up %d times after InvalidateKey of the old key, want a cache hit", n)
	}
}

// TestInvalidateAFullCache: invalidation reaches every slot of a full shard.
func TestInvalidateAFullCache(t *testing.T) {
	const max = 4 // one shard of four slots
	e, c := newCachedEnv(t, CacheConfig{MaxEntries: max})
	var toks []string
	for range max {
		tok, _ := e.issue(t)
		mustVerify(t, c, tok)
		toks = append(toks, tok)
	}
	if c.Len() != max {
		t.Fatalf("Len = %d, want %d", c.Len(), max)
	}
	if n := c.InvalidateAgent(e.agent.ID); n != max {
		t.Errorf("InvalidateAgent dropped %d entries, want %d", n, max)
	}
	if c.Len() != 0 {
		t.Errorf("Len = %d after InvalidateAgent, want 0", c.Len())
	}
	before := e.agents.totalCalls()
	mustVerify(t, c, toks[0])
	if n := e.agents.totalCalls() - before; n != 1 {
		t.Errorf("a token verified after InvalidateAgent was looked up %d times, want 1 (a miss)", n)
	}
}

// TestDelegationExpiryBounds: a delegation token's expiry must lie in the
// future and within the keyring's MaxTTL, that bound included.
func TestDelegationExpiryBounds(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	now := e.clock.Now().Truncate(time.Second)
	maxTTL := e.keys.Keyring().MaxTTL()
	for _, tc := range []struct {
		name string
		exp  time.Time
		ok   bool
	}{
		{"one second", now.Add(time.Second), true},
		{"exactly MaxTTL", now.Add(maxTTL), true},
		{"MaxTTL and a second", now.Add(maxTTL + time.Second), false},
		{"now", now, false},
		{"past", now.Add(-time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, g, err := e.issuer.Delegate(DelegationGrant{Root: NewAgentID(), Actors: []string{NewAgentID()},
				MaxChain: 1, ExpiresAt: tc.exp})
			if tc.ok && (err != nil || !g.ExpiresAt.Equal(tc.exp)) {
				t.Fatalf("Delegate = %v (exp %v), want a token expiring at %v", err, g.ExpiresAt, tc.exp)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidGrant) {
				t.Fatalf("Delegate = %v, want ErrInvalidGrant", err)
			}
		})
	}
}
