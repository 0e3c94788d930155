package identity

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// rejectCase is one way a token must be refused.
type rejectCase struct {
	name  string
	opts  []envOption
	token func(t *testing.T, e *testEnv) string
	setup func(e *testEnv)
	want  error
}

// withClaims signs the env's valid claims after edit, with the current key.
func withClaims(edit func(e *testEnv, c map[string]any)) func(*testing.T, *testEnv) string {
	return func(t *testing.T, e *testEnv) string {
		c := e.claims()
		edit(e, c)
		return signToken(t, e.current(t), nil, e.header(t), c)
	}
}

// withHeader signs the env's valid claims under an edited header, with key
// (the current key if nil) or, if secret is set, HMAC.
func withHeader(secret []byte, edit func(e *testEnv, h map[string]any)) func(*testing.T, *testEnv) string {
	return func(t *testing.T, e *testEnv) string {
		h := e.header(t)
		edit(e, h)
		if secret != nil {
			return signToken(t, nil, secret, h, e.claims())
		}
		return signToken(t, e.current(t), nil, h, e.claims())
	}
}

func rejectCases() []rejectCase {
	valid := func(t *testing.T, e *testEnv) string { tok, _ := e.issue(t); return tok }
	segment := func(tok string, i int) string { return strings.Split(tok, ".")[i] }
	return []rejectCase{
		{name: "empty", token: func(*testing.T, *testEnv) string { return "" }, want: ErrTokenMalformed},
		{name: "oversized", want: ErrTokenTooLarge, token: func(t *testing.T, e *testEnv) string {
			return valid(t, e) + strings.Repeat("A", MaxTokenSize)
		}},
		{name: "two segments", want: ErrTokenMalformed, token: func(t *testing.T, e *testEnv) string {
			tok := valid(t, e)
			return tok[:strings.LastIndexByte(tok, '.')]
		}},
		{name: "four segments", want: ErrTokenMalformed, token: func(t *testing.T, e *testEnv) string { return valid(t, e) + ".AAAA" }},
		{name: "truncated signature", want: ErrTokenSignature, token: func(t *testing.T, e *testEnv) string {
			tok := valid(t, e)
			return tok[:len(tok)-2] // 84 characters: 63 bytes, canonical base64
		}},
		{name: "header not base64url", want: ErrTokenMalformed, token: func(t *testing.T, e *testEnv) string {
			tok := valid(t, e)
			return "e30+" + tok[strings.IndexByte(tok, '.'):]
		}},
		{name: "header not an object", want: ErrTokenMalformed, token: func(t *testing.T, e *testEnv) string {
			return signRaw(t, e.current(t), nil, []byte(`["EdDSA"]`), []byte(`{}`))
		}},
		{name: "header with jku", want: ErrTokenMalformed, token: withHeader(nil, func(_ *testEnv, h map[string]any) {
			h["jku"] = "https://attacker.example/jwks.json"
		})},
		{name: "header with crit b64", want: ErrTokenMalformed, token: withHeader(nil, func(_ *testEnv, h map[string]any) {
			h["b64"], h["crit"] = false, []string{"b64"}
		})},
		{name: "header alg spelled ALG", want: ErrTokenMalformed, token: withHeader(nil, func(_ *testEnv, h map[string]any) {
			h["ALG"] = h["alg"]
			delete(h, "alg")
		})},
		{name: "typ not JWT", want: ErrTokenMalformed, token: withHeader(nil, func(_ *testEnv, h map[string]any) { h["typ"] = "JWE" })},
		{name: "non-canonical base64 signature", want: ErrTokenMalformed, token: func(t *testing.T, e *testEnv) string {
			// The last character of a 64-byte signature carries 4 unused
			// bits; a lax decoder would accept this second spelling.
			tok := valid(t, e)
			last := tok[len(tok)-1]
			alt := strings.IndexByte("AQgw", last) // canonical endings; pick another with the same 4 high bits
			if alt < 0 {
				t.Fatalf("unexpected last character %q", last)
			}
			return tok[:len(tok)-1] + string("BRhx"[alt])
		}},
		{name: "payload not JSON", want: ErrTokenMalformed, token: func(t *testing.T, e *testEnv) string {
			h, _ := json.Marshal(e.header(t))
			return signRaw(t, e.current(t), nil, h, []byte(`not json`))
		}},

		{name: "alg none, empty signature", want: ErrInvalidToken, token: func(t *testing.T, e *testEnv) string {
			tok := valid(t, e)
			return b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + segment(tok, 1) + "."
		}},
		{name: "alg none with a signature", want: ErrTokenAlg, token: func(t *testing.T, e *testEnv) string {
			tok := valid(t, e)
			return b64.EncodeToString([]byte(`{"alg":"none","kid":"`+e.current(t).kid+`"}`)) + "." + segment(tok, 1) + "." + segment(tok, 2)
		}},
		{name: "alg none without kid", want: ErrTokenAlg, token: withHeader(nil, func(_ *testEnv, h map[string]any) {
			h["alg"] = "none"
			delete(h, "kid")
		})},
		{name: "alg None", want: ErrTokenAlg, token: withHeader(nil, func(_ *testEnv, h map[string]any) { h["alg"] = "None" })},
		{name: "alg missing", want: ErrTokenAlg, token: withHeader(nil, func(_ *testEnv, h map[string]any) { delete(h, "alg") })},
		{name: "alg RS256", want: ErrTokenAlg, token: withHeader(nil, func(_ *testEnv, h map[string]any) { h["alg"] = "RS256" })},
		{name: "alg of the other key type", want: ErrTokenAlg, token: withHeader(nil, func(e *testEnv, h map[string]any) {
			h["alg"] = map[string]string{AlgEdDSA: AlgES256, AlgES256: AlgEdDSA}[h["alg"].(string)]
		})},
		{name: "HS256 with public key as secret (key confusion)", want: ErrTokenAlg, token: confusionToken},
		{name: "HS256 with public key as secret, JWT_SECRET set", opts: []envOption{withSecret(testSecret)}, want: ErrTokenAlg, token: confusionToken},
		{name: "HS256 without JWT_SECRET", want: ErrTokenAlg, token: withHeader(testSecret, func(_ *testEnv, h map[string]any) {
			h["alg"] = AlgHS256
			delete(h, "kid")
		})},
		{name: "HS256 with the wrong secret", opts: []envOption{withSecret(testSecret)}, want: ErrTokenSignature,
			token: withHeader([]byte("another-secret-another-secret-xx"), func(_ *testEnv, h map[string]any) {
				h["alg"] = AlgHS256
				delete(h, "kid")
			})},

		{name: "kid missing", want: ErrTokenKID, token: withHeader(nil, func(_ *testEnv, h map[string]any) { delete(h, "kid") })},
		{name: "kid unknown", want: ErrTokenKID, token: withHeader(nil, func(_ *testEnv, h map[string]any) { h["kid"] = "no-such-key" })},
		{name: "kid of another key", want: ErrTokenSignature, token: func(t *testing.T, e *testEnv) string {
			signer := e.current(t)
			if _, err := e.keys.Rotate(context.Background(), AlgEdDSA); err != nil {
				t.Fatal(err)
			}
			// Signed by the retired key, labelled with the current one.
			return signToken(t, signer, nil, e.header(t), e.claims())
		}},
		{name: "tampered payload", want: ErrTokenSignature, token: func(t *testing.T, e *testEnv) string {
			tok := valid(t, e)
			c := e.claims()
			c["tier"] = "privileged"
			p, _ := json.Marshal(c)
			return segment(tok, 0) + "." + b64.EncodeToString(p) + "." + segment(tok, 2)
		}},
		{name: "tampered signature", want: ErrTokenSignature, token: func(t *testing.T, e *testEnv) string {
			tok := valid(t, e)
			sig, _ := b64.DecodeString(segment(tok, 2))
			sig[0] ^= 1
			return segment(tok, 0) + "." + segment(tok, 1) + "." + b64.EncodeToString(sig)
		}},

		{name: "wrong issuer", want: ErrTokenIssuer, token: withClaims(func(_ *testEnv, c map[string]any) { c["iss"] = "other" })},
		{name: "issuer missing", want: ErrTokenIssuer, token: withClaims(func(_ *testEnv, c map[string]any) { delete(c, "iss") })},
		{name: "wrong audience", want: ErrTokenAudience, token: withClaims(func(_ *testEnv, c map[string]any) { c["aud"] = "other" })},
		{name: "audience list without ours", want: ErrTokenAudience, token: withClaims(func(_ *testEnv, c map[string]any) { c["aud"] = []string{"a", "b"} })},
		{name: "audience missing", want: ErrTokenAudience, token: withClaims(func(_ *testEnv, c map[string]any) { delete(c, "aud") })},
		{name: "expired beyond leeway", want: ErrTokenExpired, token: withClaims(func(e *testEnv, c map[string]any) {
			c["iat"] = e.clock.Now().Add(-time.Hour).Unix()
			c["nbf"] = c["iat"]
			c["exp"] = e.clock.Now().Add(-Leeway).Unix()
		})},
		{name: "expired after issuing", want: ErrTokenExpired, token: valid, setup: func(e *testEnv) { e.clock.Advance(DefaultTTL + Leeway) }},
		{name: "nbf in the future", want: ErrTokenNotYetValid, token: withClaims(func(e *testEnv, c map[string]any) {
			c["nbf"] = e.clock.Now().Add(Leeway + time.Second).Unix()
		})},
		{name: "iat in the future", want: ErrTokenNotYetValid, token: withClaims(func(e *testEnv, c map[string]any) {
			c["iat"] = e.clock.Now().Add(Leeway + time.Second).Unix()
			delete(c, "nbf")
		})},
		{name: "exp missing", want: ErrTokenClaims, token: withClaims(func(_ *testEnv, c map[string]any) { delete(c, "exp") })},
		{name: "iat missing", want: ErrTokenClaims, token: withClaims(func(_ *testEnv, c map[string]any) { delete(c, "iat") })},
		{name: "exp as a string", want: ErrTokenClaims, token: withClaims(func(e *testEnv, c map[string]any) { c["exp"] = "tomorrow" })},
		{name: "exp negative", want: ErrTokenClaims, token: withClaims(func(_ *testEnv, c map[string]any) { c["exp"] = -1 })},
		{name: "exp before iat", want: ErrTokenClaims, token: withClaims(func(e *testEnv, c map[string]any) {
			c["exp"] = e.clock.Now().Unix() + 10
			c["iat"] = e.clock.Now().Unix() + 20
			delete(c, "nbf")
		})},
		{name: "lifetime beyond max", want: ErrTokenClaims, token: withClaims(func(e *testEnv, c map[string]any) {
			c["exp"] = e.clock.Now().Add(DefaultMaxTTL + time.Hour).Unix()
		})},
		{name: "sub is a name", want: ErrTokenClaims, token: withClaims(func(_ *testEnv, c map[string]any) { c["sub"] = "billing-bot" })},
		{name: "sub missing", want: ErrTokenClaims, token: withClaims(func(_ *testEnv, c map[string]any) { delete(c, "sub") })},
		{name: "tier unknown", want: ErrTokenClaims, token: withClaims(func(_ *testEnv, c map[string]any) { c["tier"] = "root" })},
		{name: "tier missing", want: ErrTokenClaims, token: withClaims(func(_ *testEnv, c map[string]any) { delete(c, "tier") })},
		{name: "too many tags", want: ErrTokenClaims, token: withClaims(func(_ *testEnv, c map[string]any) {
			c["tags"] = make([]string, MaxTags+1)
		})},
		{name: "jti missing", want: ErrTokenJTI, token: withClaims(func(_ *testEnv, c map[string]any) { delete(c, "jti") })},
		{name: "jti empty", want: ErrTokenJTI, token: withClaims(func(_ *testEnv, c map[string]any) { c["jti"] = "" })},

		{name: "jti revoked", want: ErrTokenRevoked, token: withClaims(func(e *testEnv, c map[string]any) { e.revoked.revoke(c["jti"].(string)) })},
		{name: "agent unknown", want: ErrAgentUnknown, token: withClaims(func(_ *testEnv, c map[string]any) { c["sub"] = NewAgentID() })},
		{name: "agent revoked", want: ErrAgentRevoked, token: valid, setup: func(e *testEnv) {
			a := e.agent
			a.Status = StatusRevoked
			e.agents.put(a)
		}},
	}
}

// confusionToken is the classic attack: take the token's header, set alg
// to HS256 and HMAC the token with the (public!) verification key.
func confusionToken(t *testing.T, e *testEnv) string {
	k := e.current(t)
	h := jws.NewHeaders()
	for name, v := range map[string]any{"kid": k.kid, "typ": "JWT"} {
		if err := h.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	secret := []byte(k.edPub)
	if k.ecPub != nil {
		der, err := x509.MarshalPKIXPublicKey(k.ecPub)
		if err != nil {
			t.Fatal(err)
		}
		secret = der
	}
	payload, _ := json.Marshal(e.claims())
	tok, err := jws.Sign(payload, jws.WithKey(jwa.HS256, secret, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func TestVerifyRejects(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		for _, tc := range rejectCases() {
			t.Run(alg+"/"+tc.name, func(t *testing.T) {
				testReject(t, alg, tc)
			})
		}
	}
}

func testReject(t *testing.T, alg string, tc rejectCase) {
	e := newTestEnv(t, alg, tc.opts...)
	tok := tc.token(t, e)
	if tc.setup != nil {
		tc.setup(e)
	}
	got, err := e.verifier.Verify(context.Background(), tok)
	if !errors.Is(err, tc.want) {
		t.Fatalf("Verify error = %v, want %v", err, tc.want)
	}
	if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
		t.Errorf("error %v: want a rejection (ErrInvalidToken), not an infrastructure failure", err)
	}
	if diff := cmp.Diff(Verified{}, got); diff != "" {
		t.Errorf("a result came back with the error:\n%s", diff)
	}
	assertNoLeak(t, err, tok)
}

// assertNoLeak fails if err's message quotes any part of the token or the
// HS256 secret.
func assertNoLeak(t *testing.T, err error, tok string) {
	t.Helper()
	msg := err.Error()
	for _, part := range strings.Split(tok, ".") {
		for i := 0; i+16 <= len(part); i += 16 {
			if strings.Contains(msg, part[i:i+16]) {
				t.Fatalf("error message quotes the token: %q", msg)
			}
		}
	}
	if strings.Contains(msg, string(testSecret)) {
		t.Fatalf("error message quotes the secret: %q", msg)
	}
}
