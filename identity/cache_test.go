package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/meshguard/meshguard/trust"
)

func newCachedEnv(t *testing.T, cfg CacheConfig, opts ...envOption) (*testEnv, *CachedVerifier) {
	t.Helper()
	e := newTestEnv(t, AlgEdDSA, opts...)
	return e, NewCachedVerifier(e.verifier, cfg)
}

func mustVerify(t *testing.T, c *CachedVerifier, tok string) Verified {
	t.Helper()
	v, err := c.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return *v
}

func TestCacheHitReturnsSameResult(t *testing.T) {
	e, c := newCachedEnv(t, CacheConfig{})
	tok, _ := e.issue(t)
	first := mustVerify(t, c, tok)
	second := mustVerify(t, c, tok)
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("cached result differs (-first +second):\n%s", diff)
	}
	if n := e.agents.totalCalls(); n != 1 {
		t.Errorf("AgentSource asked %d times, want 1 (second verify from cache)", n)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
}

func TestCacheEntryLifetime(t *testing.T) {
	t.Run("ends at the token's exp", func(t *testing.T) {
		e, c := newCachedEnv(t, CacheConfig{MaxAge: time.Hour})
		tok, claims, err := e.issuer.Issue(e.agent, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		mustVerify(t, c, tok)
		e.clock.Advance(claims.ExpiresAt.Sub(e.clock.Now()) - time.Second)
		mustVerify(t, c, tok)
		if n := e.agents.totalCalls(); n != 1 {
			t.Fatalf("before exp: %d lookups, want 1", n)
		}
		// At exp the entry is dead; the token is re-verified (and still
		// accepted within the leeway) ...
		e.clock.Advance(time.Second)
		mustVerify(t, c, tok)
		if n := e.agents.totalCalls(); n != 2 {
			t.Fatalf("at exp: %d lookups, want 2 (entry outlived exp)", n)
		}
		// ... and refused beyond it, cache or not.
		e.clock.Advance(Leeway)
		if _, err := c.Verify(context.Background(), tok); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("after exp+leeway: %v, want ErrTokenExpired", err)
		}
	})
	t.Run("ends at MaxAge", func(t *testing.T) {
		e, c := newCachedEnv(t, CacheConfig{MaxAge: time.Minute})
		tok, _ := e.issue(t)
		mustVerify(t, c, tok)
		e.clock.Advance(time.Minute - time.Nanosecond)
		mustVerify(t, c, tok)
		e.clock.Advance(time.Nanosecond)
		mustVerify(t, c, tok)
		if n := e.agents.totalCalls(); n != 2 {
			t.Fatalf("%d lookups, want 2 (one after MaxAge)", n)
		}
	})
}

func TestCacheInvalidateAgent(t *testing.T) {
	e, c := newCachedEnv(t, CacheConfig{})
	tok, _ := e.issue(t)
	other := Agent{ID: NewAgentID(), Name: "other", TrustTier: trust.Verified, Status: StatusActive}
	e.agents.put(other)
	otherTok, _, err := e.issuer.Issue(other, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, c, tok)
	mustVerify(t, c, otherTok)

	revoked := e.agent
	revoked.Status = StatusRevoked
	e.agents.put(revoked)
	// Without invalidation the cache still answers (this is why the
	// caller must invalidate) ...
	mustVerify(t, c, tok)
	if n := c.InvalidateAgent(e.agent.ID); n != 1 {
		t.Errorf("InvalidateAgent dropped %d entries, want 1", n)
	}
	// ... with it, the revocation applies at once.
	if _, err := c.Verify(context.Background(), tok); !errors.Is(err, ErrAgentRevoked) {
		t.Fatalf("after InvalidateAgent: %v, want ErrAgentRevoked", err)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want the other agent's entry only", c.Len())
	}
	calls := e.agents.totalCalls()
	mustVerify(t, c, otherTok)
	if e.agents.totalCalls() != calls {
		t.Error("the other agent's entry was dropped too")
	}
}

func TestCacheInvalidateAgentAppliesDemotion(t *testing.T) {
	e, c := newCachedEnv(t, CacheConfig{})
	tok, _ := e.issue(t)
	if v := mustVerify(t, c, tok); v.Tier != trust.Trusted {
		t.Fatalf("tier %v", v.Tier)
	}
	demoted := e.agent
	demoted.TrustTier = trust.Untrusted
	e.agents.put(demoted)
	c.InvalidateAgent(e.agent.ID)
	if v := mustVerify(t, c, tok); v.Tier != trust.Untrusted {
		t.Fatalf("after demotion and InvalidateAgent tier = %v, want untrusted", v.Tier)
	}
}

func TestCacheInvalidateKey(t *testing.T) {
	ctx := context.Background()
	e, c := newCachedEnv(t, CacheConfig{})
	oldKID, _, _ := e.keys.Keyring().Current()
	oldTok, _ := e.issue(t)
	if _, err := e.keys.Rotate(ctx, AlgEdDSA); err != nil {
		t.Fatal(err)
	}
	newTok, _ := e.issue(t)
	mustVerify(t, c, oldTok)
	mustVerify(t, c, newTok)

	if n := c.InvalidateKey(oldKID); n != 1 {
		t.Errorf("InvalidateKey dropped %d entries, want 1", n)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}

	// Deleting the key and reloading refuses its tokens even if they were
	// cached and nobody called InvalidateKey.
	mustVerify(t, c, oldTok)
	if err := e.store.DeleteKey(ctx, oldKID); err != nil {
		t.Fatal(err)
	}
	if err := e.keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(ctx, oldTok); !errors.Is(err, ErrTokenKID) {
		t.Fatalf("cached token of a deleted key: %v, want ErrTokenKID", err)
	}
	mustVerify(t, c, newTok)
}

func TestCacheInvalidateTokenIDAndPurge(t *testing.T) {
	e, c := newCachedEnv(t, CacheConfig{})
	tok, claims := e.issue(t)
	tok2, _ := e.issue(t)
	mustVerify(t, c, tok)
	mustVerify(t, c, tok2)

	e.revoked.revoke(claims.ID)
	if n := c.InvalidateTokenID(claims.ID); n != 1 {
		t.Errorf("InvalidateTokenID dropped %d, want 1", n)
	}
	if _, err := c.Verify(context.Background(), tok); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked token: %v, want ErrTokenRevoked", err)
	}
	c.Purge()
	if c.Len() != 0 {
		t.Errorf("Len after Purge = %d", c.Len())
	}
	mustVerify(t, c, tok2)
	if c.Len() != 1 {
		t.Errorf("Len after re-verify = %d, want 1", c.Len())
	}
}

func TestCacheFailuresAreNotCached(t *testing.T) {
	e, c := newCachedEnv(t, CacheConfig{})
	tok, _ := e.issue(t)
	e.agents.setErr(errors.New("store down"))
	if _, err := c.Verify(context.Background(), tok); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error = %v, want ErrUnavailable", err)
	}
	e.agents.setErr(nil)
	mustVerify(t, c, tok)
	for _, bad := range []string{"", "a.b.c", tok + "x"} {
		if _, err := c.Verify(context.Background(), bad); err == nil {
			t.Errorf("Verify(%q) succeeded", bad)
		}
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1 (failures cached?)", c.Len())
	}
}

func TestCacheBound(t *testing.T) {
	for _, max := range []int{1, 7, 300} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			e, c := newCachedEnv(t, CacheConfig{MaxEntries: max})
			for range 2*max + 20 {
				tok, _ := e.issue(t)
				mustVerify(t, c, tok)
				if c.Len() > max {
					t.Fatalf("Len = %d, bound %d", c.Len(), max)
				}
			}
		})
	}
}

func TestCacheEvictionKeepsHotEntries(t *testing.T) {
	e, c := newCachedEnv(t, CacheConfig{MaxEntries: 8})
	hot, _ := e.issue(t)
	mustVerify(t, c, hot)
	const cold = 100
	for range cold {
		tok, _ := e.issue(t)
		mustVerify(t, c, tok)
		mustVerify(t, c, hot)
	}
	if n := e.agents.totalCalls(); n != 1+cold {
		t.Errorf("%d lookups, want %d: the hot token was evicted", n, 1+cold)
	}
}

func TestCacheExpiredEntriesAreEvictedFirst(t *testing.T) {
	e, c := newCachedEnv(t, CacheConfig{MaxEntries: 4}) // one shard, 4 slots
	var live []string
	for range 3 {
		tok, _ := e.issue(t)
		mustVerify(t, c, tok)
		live = append(live, tok)
	}
	short, _, err := e.issuer.Issue(e.agent, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, c, short)
	mustVerify(t, c, short) // referenced, but about to expire
	e.clock.Advance(20 * time.Second)
	for _, tok := range live {
		mustVerify(t, c, tok) // referenced and live
	}
	calls := e.agents.totalCalls()

	fresh, _ := e.issue(t)
	mustVerify(t, c, fresh)
	for _, tok := range append(live, fresh) {
		mustVerify(t, c, tok)
	}
	if got := e.agents.totalCalls() - calls; got != 1 {
		t.Errorf("%d lookups, want 1 (only the fresh token): a live entry was evicted before the expired one", got)
	}
}

// An invalidation that lands while a verification is in flight must win:
// the in-flight result read the agent before the change and is not cached.
func TestCacheInvalidationDuringVerifyIsNotUndone(t *testing.T) {
	e, c := newCachedEnv(t, CacheConfig{})
	tok, _ := e.issue(t)
	inLookup, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.agents.setHook(func(string) {
		once.Do(func() {
			close(inLookup)
			<-release
		})
	})
	done := make(chan error)
	go func() {
		_, err := c.Verify(context.Background(), tok)
		done <- err
	}()
	<-inLookup
	c.InvalidateAgent(e.agent.ID)
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("in-flight Verify: %v", err)
	}
	if c.Len() != 0 {
		t.Fatal("a result that began before InvalidateAgent was cached after it")
	}
}

func TestCacheConcurrentUse(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, c := newCachedEnv(t, CacheConfig{MaxEntries: 300})
	var toks []string
	for range 50 {
		tok, _ := e.issue(t)
		toks = append(toks, tok)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				tok := toks[(g*7+i)%len(toks)]
				if _, err := c.Verify(context.Background(), tok); err != nil {
					errs <- err
					return
				}
				switch i % 97 {
				case 0:
					c.InvalidateAgent(e.agent.ID)
				case 50:
					c.Purge()
				case 70:
					c.Len()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
