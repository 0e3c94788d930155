package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// TestCacheKeepsATokenOfTheMaximumSize: a token of exactly MaxTokenSize
// bytes is valid (docs/identity.md: "size ≤ 8 KiB"), so the cache keeps its
// verification like any other; one byte more is refused and nothing is kept.
func TestCacheKeepsATokenOfTheMaximumSize(t *testing.T) {
	e, c := newCachedEnv(t, CacheConfig{MaxEntries: 8})
	sized := func(n int) string {
		// Unknown claims are ignored (RFC 7519 §4): pad one until the
		// token has n bytes. base64 may step over n, so the jti varies too.
		sign := func(jti, pad int) string {
			claims := e.claims()
			claims["jti"] = "jti-" + strings.Repeat("j", jti)
			claims["pad"] = strings.Repeat("p", pad)
			return signToken(t, e.current(t), nil, e.header(t), claims)
		}
		for j := 1; j <= 3; j++ {
			// base64 turns 3 bytes into 4: start a little short of n.
			guess := (n-len(sign(j, 0)))*3/4 - 4
			for p := max(guess, 0); p < guess+12; p++ {
				if tok := sign(j, p); len(tok) == n {
					return tok
				}
			}
		}
		t.Fatalf("no token of %d bytes", n)
		return ""
	}
	largest, tooLarge := sized(MaxTokenSize), sized(MaxTokenSize+1)
	if _, err := c.Verify(context.Background(), largest); err != nil {
		t.Fatalf("Verify(%d-byte token) = %v, want success", len(largest), err)
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d after verifying a %d-byte token, want 1", c.Len(), len(largest))
	}
	if _, err := c.Verify(context.Background(), tooLarge); !errors.Is(err, ErrTokenTooLarge) {
		t.Fatalf("Verify(%d-byte token) = %v, want ErrTokenTooLarge", len(tooLarge), err)
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d after a refused token, want 1", c.Len())
	}
}
