package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// withRevoked makes the env's verifier ask r (nil: no revocation list).
func withRevoked(r RevokedTokens) envOption {
	return func(_ *KeysConfig, v *VerifierConfig) { v.Revoked = r }
}

// loadedSet is a RevokedSet on the env's clock, loaded with list.
func loadedSet(t testing.TB, e *testEnv, list ...RevokedToken) *RevokedSet {
	t.Helper()
	s := NewRevokedSet(e.clock.Now)
	if err := s.Load(list); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCacheRefusesARevokedJTIItHoldsVerified: a token verified and cached,
// then revoked in the set (and nothing else: no InvalidateTokenID, as on a
// replica that learnt of it through the change feed while another path
// holds the entry), is refused from the next request on, from the cache;
// the agent's other token is still served from the cache.
func TestCacheRefusesARevokedJTIItHoldsVerified(t *testing.T) {
	set := NewRevokedSet(nil)
	e, c := newCachedEnv(t, CacheConfig{}, withRevoked(set))
	set.now = e.clock.Now
	if err := set.Load(nil); err != nil {
		t.Fatal(err)
	}
	tok, claims := e.issue(t)
	other, _ := e.issue(t)
	mustVerify(t, c, tok)
	mustVerify(t, c, other)
	if n := e.agents.totalCalls(); n != 2 {
		t.Fatalf("AgentSource asked %d times, want 2", n)
	}

	if err := set.Add(RevokedToken{JTI: claims.ID, AgentID: e.agent.ID, ExpiresAt: claims.ExpiresAt, RevokedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(context.Background(), tok); !errors.Is(err, ErrTokenRevoked) || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("the cached token after its revocation: %v, want ErrTokenRevoked", err)
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d: the refusal came from a re-verification, not the cache hit", c.Len())
	}
	mustVerify(t, c, other)
	if n := e.agents.totalCalls(); n != 2 {
		t.Errorf("AgentSource asked %d times, want 2: the other token was not served from the cache", n)
	}
}

// TestRevokedSetFailsClosedUntilLoaded: a verifier whose revocation list
// has not loaded accepts no token, cached or not: ErrUnavailable, never a
// verdict on the credential.
func TestRevokedSetFailsClosedUntilLoaded(t *testing.T) {
	set := NewRevokedSet(nil)
	e, c := newCachedEnv(t, CacheConfig{}, withRevoked(set))
	tok, _ := e.issue(t)
	for name, verify := range map[string]func() error{
		"Verifier":       func() error { _, err := e.verifier.Verify(context.Background(), tok); return err },
		"CachedVerifier": func() error { _, err := c.Verify(context.Background(), tok); return err },
	} {
		err := verify()
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrRevocationsNotLoaded) || errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s before the list loaded: %v, want ErrUnavailable (ErrRevocationsNotLoaded)", name, err)
		}
	}
	if err := set.Load(nil); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, c, tok)
}

func TestRevokedSet(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	rt := func(jti string, exp time.Duration) RevokedToken {
		return RevokedToken{JTI: jti, AgentID: "agent_x", ExpiresAt: now.Add(exp), RevokedAt: now}
	}
	revoked := func(s *RevokedSet, jti string) bool {
		t.Helper()
		ok, err := s.IsTokenRevoked(context.Background(), jti)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	t.Run("a reload merges: it loses no Add made meanwhile", func(t *testing.T) {
		s := NewRevokedSet(clock.Now)
		if err := s.Load([]RevokedToken{rt("a", time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(rt("b", time.Hour)); err != nil {
			t.Fatal(err)
		}
		// A reload that read the store before b was written.
		if err := s.Load([]RevokedToken{rt("a", time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if !revoked(s, "a") || !revoked(s, "b") || revoked(s, "c") {
			t.Errorf("after the reload: a %v, b %v, c %v; want a and b revoked", revoked(s, "a"), revoked(s, "b"), revoked(s, "c"))
		}
	})
	t.Run("an entry stays until its token's exp plus the leeway", func(t *testing.T) {
		c := newFakeClock()
		s := NewRevokedSet(c.Now)
		if err := s.Load([]RevokedToken{{JTI: "a", AgentID: "agent_x", ExpiresAt: c.Now().Add(time.Minute), RevokedAt: c.Now()}}); err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Minute + Leeway - time.Nanosecond)
		_ = s.Add(RevokedToken{JTI: "b", AgentID: "agent_x", ExpiresAt: c.Now().Add(time.Hour), RevokedAt: c.Now()})
		if !revoked(s, "a") {
			t.Fatal("pruned before exp+leeway, while the token is still accepted")
		}
		c.Advance(time.Nanosecond)
		_ = s.Add(RevokedToken{JTI: "c", AgentID: "agent_x", ExpiresAt: c.Now().Add(time.Hour), RevokedAt: c.Now()})
		if revoked(s, "a") || len(s.Live()) != 2 {
			t.Errorf("after exp+leeway: a revoked %v, live %d; want it pruned", revoked(s, "a"), len(s.Live()))
		}
	})
	t.Run("Covers: a jti held until its exp, not a later one", func(t *testing.T) {
		s := NewRevokedSet(clock.Now)
		if _, err := s.Covers(rt("a", time.Hour)); !errors.Is(err, ErrRevocationsNotLoaded) {
			t.Fatalf("Covers before the load: %v, want ErrRevocationsNotLoaded", err)
		}
		if err := s.Load([]RevokedToken{rt("a", time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			r    RevokedToken
			want bool
		}{{rt("a", time.Minute), true}, {rt("a", time.Hour), true}, {rt("a", 2*time.Hour), false}, {rt("b", time.Minute), false}} {
			if got, err := s.Covers(tc.r); err != nil || got != tc.want {
				t.Errorf("Covers(%s until %v) = %v, %v; want %v", tc.r.JTI, tc.r.ExpiresAt.Sub(now), got, err, tc.want)
			}
		}
	})
	t.Run("bounded: a load past the limit is refused whole", func(t *testing.T) {
		s := NewRevokedSet(clock.Now)
		list := make([]RevokedToken, MaxRevokedTokens+1)
		for i := range list {
			list[i] = rt(fmt.Sprintf("j%d", i), time.Hour)
		}
		if err := s.Load(list[:MaxRevokedTokens]); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(list[MaxRevokedTokens]); !errors.Is(err, ErrTooManyRevocations) {
			t.Fatalf("Add past the limit: %v, want ErrTooManyRevocations", err)
		}
		if revoked(s, list[MaxRevokedTokens].JTI) || len(s.Live()) != MaxRevokedTokens {
			t.Errorf("the refused Add changed the set")
		}
	})
}

func TestValidJTI(t *testing.T) {
	for _, tc := range []struct {
		jti  string
		want bool
	}{
		{"Zm9vYmFyYmF6cXV4cXV1eA", true},
		{"550e8400-e29b-41d4-a716-446655440000", true},
		{strings.Repeat("a", 256), true},
		{"", false},
		{strings.Repeat("a", 257), false},
		{"a b", false},
		{"a\nb", false},
		{"a\x7fb", false},
		{"é", false},
	} {
		if got := ValidJTI(tc.jti); got != tc.want {
			t.Errorf("ValidJTI(%q) = %v, want %v", tc.jti, got, tc.want)
		}
	}
}

// TestVerifyRefusesAJTIThatCouldNotBeRevoked: a token (here HS256, which
// another issuer may mint) whose jti is no valid token id is refused: the
// revocation API could not name it.
func TestVerifyRefusesAJTIThatCouldNotBeRevoked(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA, withSecret(testSecret))
	for _, jti := range []string{"a b", "line\nbreak", "é"} {
		c := e.claims()
		c["jti"] = jti
		tok := signToken(t, nil, testSecret, map[string]any{"alg": AlgHS256, "typ": "JWT"}, c)
		if _, err := e.verifier.Verify(context.Background(), tok); !errors.Is(err, ErrTokenJTI) {
			t.Errorf("jti %q: %v, want ErrTokenJTI", jti, err)
		}
	}
}

// TestToRevoke: a token MeshGuard signed is revocable even when Verify
// would refuse it for another reason; a token MeshGuard did not sign, or
// not an agent token, is not.
func TestToRevoke(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	tok, claims := e.issue(t)
	got, err := e.verifier.ToRevoke(tok)
	if err != nil || got.JTI != claims.ID || got.AgentID != e.agent.ID || !got.ExpiresAt.Equal(claims.ExpiresAt) {
		t.Fatalf("ToRevoke = %+v, %v; want jti %s, agent %s, exp %v", got, err, claims.ID, e.agent.ID, claims.ExpiresAt)
	}

	expired := e.claims()
	expired["iat"], expired["nbf"], expired["exp"] = e.clock.Now().Add(-2*time.Hour).Unix(), e.clock.Now().Add(-2*time.Hour).Unix(), e.clock.Now().Add(-time.Hour).Unix()
	unknownAgent := e.claims()
	unknownAgent["sub"] = NewAgentID()
	other := newTestEnv(t, AlgEdDSA)
	foreign, _ := other.issue(t)
	delegation, _, err := e.issuer.Delegate(DelegationGrant{Root: e.agent.ID, Actors: []string{NewAgentID()}, ExpiresAt: e.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	noSub := e.claims()
	delete(noSub, "sub")
	badJTI := e.claims()
	badJTI["jti"] = "a b"
	tampered := tok[:len(tok)-4] + "AAAA"
	if tampered == tok {
		tampered = tok[:len(tok)-4] + "BBBB"
	}
	for _, tc := range []struct {
		name  string
		token string
		want  error // nil: revocable
	}{
		{"expired", signToken(t, e.current(t), nil, e.header(t), expired), nil},
		{"of an agent the store does not know", signToken(t, e.current(t), nil, e.header(t), unknownAgent), nil},
		{"signed by another MeshGuard", foreign, ErrTokenKID},
		{"with a tampered signature", tampered, ErrTokenSignature},
		{"malformed", "not.a-token", ErrTokenMalformed},
		{"a delegation token", delegation, ErrTokenMalformed},
		{"without sub", signToken(t, e.current(t), nil, e.header(t), noSub), ErrTokenClaims},
		{"with a jti of the wrong shape", signToken(t, e.current(t), nil, e.header(t), badJTI), ErrTokenJTI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.verifier.ToRevoke(tc.token)
			switch {
			case tc.want == nil && err != nil:
				t.Errorf("ToRevoke: %v, want it revocable", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("ToRevoke: %v, want %v", err, tc.want)
			case err != nil && strings.Contains(err.Error(), tc.token):
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
}

// BenchmarkVerifyCachedRevocations is the cached hot path with no
// revocation list, with an empty RevokedSet and with a full one (the token
// not in it): the cost every request pays for revocations.
func BenchmarkVerifyCachedRevocations(b *testing.B) {
	full := func(e *testEnv) RevokedTokens {
		list := make([]RevokedToken, MaxRevokedTokens)
		for i := range list {
			list[i] = RevokedToken{JTI: fmt.Sprintf("revoked-%d", i), AgentID: e.agent.ID, ExpiresAt: e.clock.Now().Add(time.Hour), RevokedAt: e.clock.Now()}
		}
		return loadedSet(b, e, list...)
	}
	for _, bc := range []struct {
		name string
		list func(e *testEnv) RevokedTokens
	}{
		{"none", func(*testEnv) RevokedTokens { return nil }},
		{"empty", func(e *testEnv) RevokedTokens { return loadedSet(b, e) }},
		{"100k", full},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newTestEnv(b, AlgEdDSA)
			v, err := NewVerifier(VerifierConfig{Keys: e.keys, Agents: e.agents, Revoked: bc.list(e), Now: e.clock.Now})
			if err != nil {
				b.Fatal(err)
			}
			c := NewCachedVerifier(v, CacheConfig{})
			tok, _ := e.issue(b)
			ctx := context.Background()
			if _, err := c.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRevokingAJTIAgainWithALaterExpHolds: two tokens with one jti (an
// issuer sharing JWT_SECRET may reuse one; a token re-signed with a later
// exp) are both revoked. A reload that read the list before the second
// revocation must not put the first exp back: past it, the second token
// would be accepted again although its revocation was answered.
func TestRevokingAJTIAgainWithALaterExpHolds(t *testing.T) {
	set := NewRevokedSet(nil)
	e := newTestEnv(t, AlgEdDSA, withSecret(testSecret), withRevoked(set))
	set.now = e.clock.Now
	hs := map[string]any{"alg": AlgHS256, "typ": "JWT"}
	short, long := e.claims(), e.claims()
	short["exp"] = e.clock.Now().Add(time.Minute).Unix()
	long["exp"] = e.clock.Now().Add(time.Hour).Unix()
	shortTok, longTok := signToken(t, nil, testSecret, hs, short), signToken(t, nil, testSecret, hs, long)
	first, err := e.verifier.ToRevoke(shortTok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.verifier.ToRevoke(longTok)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Load([]RevokedToken{first}); err != nil {
		t.Fatal(err)
	}
	if err := set.Add(second); err != nil {
		t.Fatal(err)
	}
	// A reload that read the store before the second revocation.
	if err := set.Load([]RevokedToken{first}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute + Leeway + time.Second) // the short token is dead
	if err := set.Load(nil); err != nil {               // the next periodic reload prunes
		t.Fatal(err)
	}
	if _, err := e.verifier.Verify(context.Background(), longTok); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("the later token with the revoked jti, past the first's exp: %v, want ErrTokenRevoked", err)
	}
	if live := set.Live(); len(live) != 1 || !live[0].ExpiresAt.Equal(second.ExpiresAt) {
		t.Errorf("Live = %+v, want the jti until the later exp %v", live, second.ExpiresAt)
	}
}

// TestRevokeByJTICoversEveryTokenAcceptedNow: a revocation by jti and
// agent alone (the token's exp unknown) outlives every token with that jti
// the verifier could accept at the moment of the revocation: one issued
// with an iat up to Leeway ahead (another replica's clock; an HS256 issuer
// sharing JWT_SECRET) and the longest lifetime, to its last accepted
// instant.
func TestRevokeByJTICoversEveryTokenAcceptedNow(t *testing.T) {
	set := NewRevokedSet(nil)
	e := newTestEnv(t, AlgEdDSA, withSecret(testSecret), withRevoked(set))
	set.now = e.clock.Now
	if err := set.Load(nil); err != nil {
		t.Fatal(err)
	}
	ahead := e.clock.Now().Add(Leeway - time.Second)
	c := e.claims()
	c["iat"], c["nbf"] = ahead.Unix(), ahead.Unix()
	c["exp"] = ahead.Add(e.keys.Keyring().MaxTTL()).Unix()
	tok := signToken(t, nil, testSecret, map[string]any{"alg": AlgHS256, "typ": "JWT"}, c)
	if _, err := e.verifier.Verify(context.Background(), tok); err != nil {
		t.Fatalf("the token is not accepted now: %v", err) // the revocation must cover it
	}

	r, err := e.verifier.ToRevokeByJTI(c["jti"].(string), e.agent.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Add(r); err != nil {
		t.Fatal(err)
	}
	// The token's last accepted instant: exp plus the leeway, less 1s.
	e.clock.Advance(time.Unix(c["exp"].(int64), 0).Add(Leeway - time.Second).Sub(e.clock.Now()))
	if err := set.Load(nil); err != nil { // the periodic reload prunes what is dead
		t.Fatal(err)
	}
	if _, err := e.verifier.Verify(context.Background(), tok); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("the token at its last accepted instant: %v, want ErrTokenRevoked", err)
	}
	for _, tc := range []struct{ jti, agent string }{{"a b", e.agent.ID}, {"", e.agent.ID}, {"jti", "not-an-agent"}} {
		if _, err := e.verifier.ToRevokeByJTI(tc.jti, tc.agent); !errors.Is(err, ErrInvalidRevocation) {
			t.Errorf("ToRevokeByJTI(%q, %q): %v, want ErrInvalidRevocation", tc.jti, tc.agent, err)
		}
	}
}

// TestDelegationOfARevokedTokenIsRefused: a delegation token is refused
// (ErrTokenRevoked) once a token that handed it on is revoked, by the
// Verifier and from the cache that holds it verified; before the list
// loads it is ErrUnavailable (fail closed), never accepted unchecked.
func TestDelegationOfARevokedTokenIsRefused(t *testing.T) {
	set := NewRevokedSet(nil)
	e, c := newCachedEnv(t, CacheConfig{}, withRevoked(set))
	set.now = e.clock.Now
	_, claims := e.issue(t)
	tok, _, err := e.issuer.Delegate(DelegationGrant{Root: e.agent.ID, Actors: []string{NewAgentID(), NewAgentID()},
		ExpiresAt: e.clock.Now().Add(time.Hour), ByTokens: []string{"another-jti", claims.ID}})
	if err != nil {
		t.Fatal(err)
	}
	verifiers := map[string]func() error{
		"Verifier":       func() error { _, err := e.verifier.VerifyDelegation(tok); return err },
		"CachedVerifier": func() error { _, err := c.VerifyDelegation(tok); return err },
	}
	for name, verify := range verifiers {
		if err := verify(); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s before the list loaded: %v, want ErrUnavailable", name, err)
		}
	}
	if err := set.Load(nil); err != nil {
		t.Fatal(err)
	}
	for name, verify := range verifiers { // the cache holds it now
		if err := verify(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := set.Add(RevokedToken{JTI: claims.ID, AgentID: e.agent.ID, ExpiresAt: claims.ExpiresAt, RevokedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	for name, verify := range verifiers {
		if err := verify(); !errors.Is(err, ErrTokenRevoked) {
			t.Errorf("%s after the revocation of a token that handed it on: %v, want ErrTokenRevoked", name, err)
		}
	}
}
