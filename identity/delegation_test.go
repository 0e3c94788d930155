package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDelegationRoundTrip(t *testing.T) {
	for _, alg := range SupportedAlgs() {
		t.Run(alg, func(t *testing.T) {
			e := newTestEnv(t, alg)
			a, b, c := NewAgentID(), NewAgentID(), NewAgentID()
			exp := e.clock.Now().Add(time.Hour)
			tok, minted, err := e.issuer.Delegate(DelegationGrant{Root: a, Actors: []string{b, c}, Scope: []string{"read:*", "write:email"}, MaxChain: 3, ExpiresAt: exp,
				Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.verifier.VerifyDelegation(tok)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(minted, got); diff != "" {
				t.Fatalf("verified grant differs from minted (-minted +verified):\n%s", diff)
			}
			if got.Actor() != c || !cmp.Equal(got.Delegators(), []string{a, b}) || !got.ExpiresAt.Equal(exp.Truncate(time.Second)) {
				t.Fatalf("actor %s delegators %v exp %v", got.Actor(), got.Delegators(), got.ExpiresAt)
			}
			// The outermost act is the newest actor (RFC 8693).
			payload := decodeSegment(t, tok, 1)
			if !strings.Contains(payload, `"act":{"sub":"`+c+`","act":{"sub":"`+b+`"}}`) || !strings.Contains(payload, `"sub":"`+a+`"`) {
				t.Fatalf("payload %s", payload)
			}
		})
	}
}

func TestDelegationAndAgentTokensDoNotMix(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	agentTok, _ := e.issue(t)
	if _, err := e.verifier.VerifyDelegation(agentTok); !errors.Is(err, ErrTokenMalformed) {
		t.Fatalf("agent token accepted as a delegation token: %v", err)
	}
	delTok, _, err := e.issuer.Delegate(DelegationGrant{Root: e.agent.ID, Actors: []string{NewAgentID()}, ExpiresAt: e.clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.verifier.Verify(context.Background(), delTok); !errors.Is(err, ErrTokenMalformed) {
		t.Fatalf("delegation token accepted as an agent token: %v", err)
	}
	// Even with the agent typ and claims a delegation token would lack,
	// the audience keeps them apart.
	hdr := e.header(t)
	claims := map[string]any{"iss": DefaultIssuer, "aud": DefaultAudience, "sub": e.agent.ID, "act": map[string]any{"sub": NewAgentID()},
		"iat": e.clock.Now().Unix(), "exp": e.clock.Now().Unix() + 60, "jti": "x"}
	hdr["typ"] = typDelegation
	if _, err := e.verifier.VerifyDelegation(signToken(t, e.current(t), nil, hdr, claims)); !errors.Is(err, ErrTokenAudience) {
		t.Fatalf("delegation token with the agent audience: %v", err)
	}
}

func TestDelegationRejects(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA, withSecret(testSecret))
	now := e.clock.Now().Unix()
	good := func() map[string]any {
		return map[string]any{"iss": DefaultIssuer, "aud": DefaultAudience + DelegationAudienceSuffix, "sub": e.agent.ID,
			"act": map[string]any{"sub": NewAgentID()}, "iat": now, "exp": now + 600, "jti": "j1"}
	}
	hdr := func() map[string]any { h := e.header(t); h["typ"] = typDelegation; return h }
	deep := map[string]any{"sub": NewAgentID()}
	for range MaxActors {
		deep = map[string]any{"sub": NewAgentID(), "act": deep}
	}
	tests := []struct {
		name   string
		mutate func(h, c map[string]any)
		hs256  bool
		want   error
	}{
		{"valid", func(h, c map[string]any) {}, false, nil},
		{"HS256 never mints delegations", func(h, c map[string]any) { h["alg"] = AlgHS256; delete(h, "kid") }, true, ErrTokenAlg},
		{"alg none", func(h, c map[string]any) { h["alg"] = "none" }, false, ErrTokenAlg},
		{"expired", func(h, c map[string]any) { c["exp"] = now - 31; c["iat"] = now - 100 }, false, ErrTokenExpired},
		{"wrong issuer", func(h, c map[string]any) { c["iss"] = "evil" }, false, ErrTokenIssuer},
		{"no actor", func(h, c map[string]any) { delete(c, "act") }, false, ErrTokenClaims},
		{"actor not an agent id", func(h, c map[string]any) { c["act"] = map[string]any{"sub": "researcher"} }, false, ErrTokenClaims},
		{"root not an agent id", func(h, c map[string]any) { c["sub"] = "" }, false, ErrTokenClaims},
		{"too many actors", func(h, c map[string]any) { c["act"] = deep }, false, ErrTokenClaims},
		{"scope with an empty entry", func(h, c map[string]any) { c["scope"] = "read:*  write:x" }, false, ErrTokenClaims},
		{"scope of the wrong type", func(h, c map[string]any) { c["scope"] = []string{"read:*"} }, false, ErrTokenClaims},
		{"missing jti", func(h, c map[string]any) { delete(c, "jti") }, false, ErrTokenJTI},
		{"lifetime beyond the maximum", func(h, c map[string]any) { c["exp"] = now + int64(DefaultMaxTTL/time.Second) + 10 }, false, ErrTokenClaims},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, c := hdr(), good()
			tc.mutate(h, c)
			key := e.current(t)
			if tc.hs256 {
				key = nil
			}
			_, err := e.verifier.VerifyDelegation(signToken(t, key, testSecret, h, c))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("valid token refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	tok, _, err := e.issuer.Delegate(DelegationGrant{Root: e.agent.ID, Actors: []string{NewAgentID()}, ExpiresAt: e.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + b64.EncodeToString([]byte(`{"iss":"meshguard"}`)) + "." + parts[2]
	if _, err := e.verifier.VerifyDelegation(tampered); !errors.Is(err, ErrTokenSignature) {
		t.Fatalf("tampered: %v", err)
	}
}

func TestDelegateRefusesBadGrants(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	id := NewAgentID()
	future := e.clock.Now().Add(time.Hour)
	for name, g := range map[string]DelegationGrant{
		"no root":          {Actors: []string{id}, ExpiresAt: future},
		"no actors":        {Root: id, ExpiresAt: future},
		"name as actor":    {Root: id, Actors: []string{"researcher"}, ExpiresAt: future},
		"past expiry":      {Root: id, Actors: []string{id}, ExpiresAt: e.clock.Now().Add(-time.Second)},
		"beyond max TTL":   {Root: id, Actors: []string{id}, ExpiresAt: e.clock.Now().Add(DefaultMaxTTL + time.Hour)},
		"scope whitespace": {Root: id, Actors: []string{id}, Scope: []string{"read: x"}, ExpiresAt: future},
		"negative cap":     {Root: id, Actors: []string{id}, MaxChain: -1, ExpiresAt: future},
		"bad traceparent":  {Root: id, Actors: []string{id}, ExpiresAt: future, Traceparent: "00-zz"},
		"later version":    {Root: id, Actors: []string{id}, ExpiresAt: future, Traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"},
	} {
		if _, _, err := e.issuer.Delegate(g); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("%s: got %v, want ErrInvalidGrant", name, err)
		}
	}
}

// decodeSegment returns segment i of a compact JWS, decoded.
func decodeSegment(t *testing.T, tok string, i int) string {
	t.Helper()
	b, err := b64.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCachedDelegations(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	c := NewCachedVerifier(e.verifier, CacheConfig{MaxAge: time.Hour})
	tok, minted, err := e.issuer.Delegate(DelegationGrant{Root: e.agent.ID, Actors: []string{NewAgentID()}, ExpiresAt: e.clock.Now().Add(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		g, err := c.VerifyDelegation(tok)
		if err != nil || !cmp.Equal(g, minted) {
			t.Fatalf("cached delegation: %+v, %v", g, err)
		}
	}
	if _, err := c.VerifyDelegation(tok + "x"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("tampered: %v", err)
	}
	// An entry never outlives the token.
	e.clock.Advance(11 * time.Minute)
	if _, err := c.VerifyDelegation(tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired delegation served from the cache: %v", err)
	}
	// Removing the signing key stops its cached delegations at once.
	e.clock.Advance(-11 * time.Minute)
	tok2, _, err := e.issuer.Delegate(DelegationGrant{Root: e.agent.ID, Actors: []string{NewAgentID()}, ExpiresAt: e.clock.Now().Add(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyDelegation(tok2); err != nil {
		t.Fatal(err)
	}
	kid := e.current(t).kid
	if err := e.store.DeleteKey(context.Background(), kid); err != nil {
		t.Fatal(err)
	}
	if err := e.keys.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := c.InvalidateKey(kid); n == 0 {
		t.Fatal("InvalidateKey dropped no delegation entry")
	}
	if _, err := c.VerifyDelegation(tok2); !errors.Is(err, ErrTokenKID) {
		t.Fatalf("delegation of a removed key: %v", err)
	}
}
