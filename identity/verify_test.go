package identity

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/trust"
)

func TestIssueVerifyRoundTrip(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			e := newTestEnv(t, alg)
			tok, claims, err := e.issuer.Issue(e.agent, time.Hour)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			now := e.clock.Now().Truncate(time.Second)
			wantClaims := Claims{
				Issuer: DefaultIssuer, Subject: e.agent.ID, Audience: DefaultAudience,
				Name: e.agent.Name, Tier: trust.Trusted, Tags: e.agent.Tags,
				IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Hour), ID: claims.ID,
			}
			if diff := cmp.Diff(wantClaims, claims); diff != "" {
				t.Errorf("issued claims (-want +got):\n%s", diff)
			}
			if len(claims.ID) < 22 {
				t.Errorf("jti %q: want at least 128 random bits", claims.ID)
			}

			got, err := e.verifier.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			kid, _, _ := e.keys.Keyring().Current()
			want := Verified{Claims: wantClaims, Agent: e.agent, Tier: trust.Trusted, KID: kid, Alg: alg}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}

			// The protected header is exactly alg, kid, typ.
			hdr, err := b64.DecodeString(tok[:strings.IndexByte(tok, '.')])
			if err != nil {
				t.Fatal(err)
			}
			var h map[string]string
			if err := json.Unmarshal(hdr, &h); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"alg": alg, "kid": kid, "typ": "JWT"}, h); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIssuePayloadClaimNames(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	e.agent.Tags = nil
	e.agents.put(e.agent)
	tok, _ := e.issue(t)
	raw, err := b64.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"iss", "sub", "aud", "name", "tier", "tags", "iat", "nbf", "exp", "jti"} {
		if _, ok := m[name]; !ok {
			t.Errorf("claim %q missing from payload %s", name, raw)
		}
	}
	if tags, ok := m["tags"].([]any); !ok || len(tags) != 0 {
		t.Errorf("tags = %#v, want an empty array for an agent without tags", m["tags"])
	}
	if m["iat"] != m["nbf"] {
		t.Errorf("nbf %v != iat %v", m["nbf"], m["iat"])
	}
}

func TestIssueRejects(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	revoked := e.agent
	revoked.Status = StatusRevoked
	badID := e.agent
	badID.ID = "billing-bot"
	badTier := e.agent
	badTier.TrustTier = trust.Tier(9)
	huge := e.agent
	for i := range MaxTags {
		huge.Tags = append(huge.Tags, strings.Repeat("t", 200)+string(rune('a'+i%26)))
	}

	tests := []struct {
		name  string
		agent Agent
		ttl   time.Duration
		want  error
	}{
		{"ttl beyond max", e.agent, DefaultMaxTTL + time.Second, ErrInvalidTTL},
		{"negative ttl", e.agent, -time.Hour, ErrInvalidTTL},
		{"ttl under a second", e.agent, time.Millisecond, ErrInvalidTTL},
		{"revoked agent", revoked, 0, ErrInvalidAgent},
		{"name as id", badID, 0, ErrInvalidAgent},
		{"invalid tier", badTier, 0, ErrInvalidAgent},
		{"token would exceed MaxTokenSize", huge, 0, ErrInvalidAgent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, _, err := e.issuer.Issue(tc.agent, tc.ttl)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Issue error = %v, want %v", err, tc.want)
			}
			if tok != "" {
				t.Error("a token was returned with the error")
			}
		})
	}

	t.Run("max ttl accepted", func(t *testing.T) {
		if _, c, err := e.issuer.Issue(e.agent, DefaultMaxTTL); err != nil || c.ExpiresAt.Sub(c.IssuedAt) != DefaultMaxTTL {
			t.Fatalf("Issue(max) = %v, %v", c, err)
		}
	})
	t.Run("default ttl is 24h", func(t *testing.T) {
		if _, c, err := e.issuer.Issue(e.agent, 0); err != nil || c.ExpiresAt.Sub(c.IssuedAt) != 24*time.Hour {
			t.Fatalf("Issue(0) lifetime = %v, %v", c.ExpiresAt.Sub(c.IssuedAt), err)
		}
	})
	t.Run("no signing key", func(t *testing.T) {
		ring, err := NewKeyring(nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		iss, err := NewIssuer(IssuerConfig{Keys: ring})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := iss.Issue(e.agent, 0); !errors.Is(err, ErrNoSigningKey) {
			t.Fatalf("error = %v, want ErrNoSigningKey", err)
		}
	})
}

func TestVerifyAccepts(t *testing.T) {
	tests := []struct {
		name  string
		opts  []envOption
		token func(t *testing.T, e *testEnv) string
		setup func(e *testEnv)
	}{
		{name: "expired within leeway", token: withClaims(func(e *testEnv, c map[string]any) {
			c["iat"] = e.clock.Now().Add(-time.Hour).Unix()
			c["nbf"] = c["iat"]
			c["exp"] = e.clock.Now().Add(-Leeway + time.Second).Unix()
		})},
		{name: "nbf within leeway", token: withClaims(func(e *testEnv, c map[string]any) {
			c["nbf"] = e.clock.Now().Add(Leeway).Unix()
			c["iat"] = c["nbf"]
		})},
		{name: "no nbf", token: withClaims(func(_ *testEnv, c map[string]any) { delete(c, "nbf") })},
		{name: "audience list with ours", token: withClaims(func(_ *testEnv, c map[string]any) { c["aud"] = []string{"x", DefaultAudience} })},
		{name: "fractional dates", token: withClaims(func(e *testEnv, c map[string]any) {
			c["iat"] = float64(e.clock.Now().Unix()) + 0.5
			c["exp"] = float64(e.clock.Now().Unix()) + 60.25
		})},
		{name: "unknown claims ignored", token: withClaims(func(_ *testEnv, c map[string]any) { c["scope"] = "x" })},
		{name: "tier synonym unverified", token: withClaims(func(_ *testEnv, c map[string]any) { c["tier"] = "unverified" })},
		{name: "HS256 with JWT_SECRET, no kid", opts: []envOption{withSecret(testSecret)},
			token: withHeader(testSecret, func(_ *testEnv, h map[string]any) {
				h["alg"] = AlgHS256
				delete(h, "kid")
			})},
		{name: "HS256 with JWT_SECRET, foreign kid", opts: []envOption{withSecret(testSecret)},
			token: withHeader(testSecret, func(_ *testEnv, h map[string]any) {
				h["alg"] = AlgHS256
				h["kid"] = "hosted-1"
			})},
		{name: "issued token just before expiry", token: func(t *testing.T, e *testEnv) string { tok, _ := e.issue(t); return tok },
			setup: func(e *testEnv) { e.clock.Advance(DefaultTTL + Leeway - time.Second) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, AlgEdDSA, tc.opts...)
			tok := tc.token(t, e)
			if tc.setup != nil {
				tc.setup(e)
			}
			got, err := e.verifier.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Claims.Subject != e.agent.ID || got.Agent.ID != e.agent.ID {
				t.Errorf("verified subject %q agent %q, want %q", got.Claims.Subject, got.Agent.ID, e.agent.ID)
			}
		})
	}
}

func TestVerifyEffectiveTier(t *testing.T) {
	tests := []struct {
		name       string
		agentTier  trust.Tier
		wantTier   trust.Tier
		tokenTierC trust.Tier
	}{
		{"unchanged", trust.Trusted, trust.Trusted, trust.Trusted},
		{"demotion lowers the tier at once", trust.Verified, trust.Verified, trust.Trusted},
		{"demotion to untrusted", trust.Untrusted, trust.Untrusted, trust.Trusted},
		{"promotion does not raise an old token", trust.Privileged, trust.Trusted, trust.Trusted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, AlgEdDSA)
			tok, _ := e.issue(t)
			a := e.agent
			a.TrustTier = tc.agentTier
			e.agents.put(a)
			got, err := e.verifier.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if got.Tier != tc.wantTier || got.Claims.Tier != tc.tokenTierC {
				t.Errorf("effective tier %v (token %v), want %v (token %v)", got.Tier, got.Claims.Tier, tc.wantTier, tc.tokenTierC)
			}
		})
	}
}

func TestVerifyInfrastructureFailuresFailClosed(t *testing.T) {
	storeDown := errors.New("connection refused")
	tests := []struct {
		name  string
		setup func(e *testEnv)
	}{
		{"agent source error", func(e *testEnv) { e.agents.setErr(storeDown) }},
		{"revocation list error", func(e *testEnv) { e.revoked.err = storeDown }},
		{"corrupt agent tier", func(e *testEnv) {
			a := e.agent
			a.TrustTier = trust.Tier(200)
			e.agents.put(a)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, AlgEdDSA)
			tok, _ := e.issue(t)
			tc.setup(e)
			_, err := e.verifier.Verify(context.Background(), tok)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("error = %v, want ErrUnavailable", err)
			}
			if errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v is classed as a bad token; a store failure must be distinguishable", err)
			}
		})
	}
	t.Run("cause is wrapped", func(t *testing.T) {
		e := newTestEnv(t, AlgEdDSA)
		tok, _ := e.issue(t)
		e.agents.setErr(context.DeadlineExceeded)
		if _, err := e.verifier.Verify(context.Background(), tok); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want it to wrap context.DeadlineExceeded", err)
		}
	})
}

func TestNewVerifierConfig(t *testing.T) {
	ring, err := NewKeyring(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(VerifierConfig{Keys: ring, Agents: newFakeAgents(), HS256Secret: []byte("short")}); err == nil {
		t.Error("a 5-byte HS256 secret was accepted")
	}
	if _, err := NewVerifier(VerifierConfig{Keys: ring}); err == nil {
		t.Error("a verifier without AgentSource was built")
	}
	if _, err := NewVerifier(VerifierConfig{Keys: ring, Agents: newFakeAgents(), HS256Secret: testSecret}); err != nil {
		t.Errorf("32-byte secret: %v", err)
	}
}

func TestValidAgentID(t *testing.T) {
	tests := map[string]bool{
		NewAgentID():                       true,
		"agent_abc123":                     true,
		"agent_":                           false,
		"agent":                            false,
		"billing-bot":                      false,
		"agent_a b":                        false,
		"agent_a\n":                        false,
		"agent_" + strings.Repeat("a", 64): true,
		"agent_" + strings.Repeat("a", 65): false,
	}
	for id, want := range tests {
		if got := ValidAgentID(id); got != want {
			t.Errorf("ValidAgentID(%q) = %v, want %v", id, got, want)
		}
	}
}
