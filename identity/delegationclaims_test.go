package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// delegEnv is an EdDSA env whose Ed25519 key was retired by a rotation to
// ES256: both keys verify, so kid and alg can be crossed.
type delegEnv struct {
	*testEnv
	ed, es *signingKey
}

func newDelegEnv(t *testing.T) *delegEnv {
	e := newTestEnv(t, AlgEdDSA)
	ed := e.current(t)
	if _, err := e.keys.Rotate(context.Background(), AlgES256); err != nil {
		t.Fatal(err)
	}
	return &delegEnv{testEnv: e, ed: e.keys.Keyring().byKID[ed.kid], es: e.current(t)}
}

// TestDelegationTokenRefusals: delegation tokens that are not good yet,
// are not addressed to MeshGuard's delegation audience as the one string
// Delegate writes, carry header parameters MeshGuard does not accept, or
// play games with kid or typ, are refused, each with its own sentinel and
// wording. The controls (within leeway, the valid token) must verify, so a
// refusal is never the builder's fault.
func TestDelegationTokenRefusals(t *testing.T) {
	type tokenCase struct {
		name    string
		hdr     func(e *delegEnv, h map[string]any)
		claims  func(e *delegEnv, c map[string]any)
		signer  func(e *delegEnv) *signingKey // e.es if nil
		start   func(e *delegEnv)             // runs before the token is built
		advance time.Duration                 // clock moved after signing
		want    error                         // nil: must verify
		msg     string
	}
	now := func(e *delegEnv) time.Time { return e.clock.Now() }
	tests := []tokenCase{
		{name: "valid control"},
		{name: "nbf in the future", claims: func(e *delegEnv, c map[string]any) { c["nbf"] = now(e).Add(Leeway + 2*time.Second).Unix() },
			want: ErrTokenNotYetValid, msg: "nbf is 32s ahead"},
		{name: "nbf within the leeway", claims: func(e *delegEnv, c map[string]any) { c["nbf"] = now(e).Add(Leeway).Unix() }},
		{name: "nbf not a number", claims: func(e *delegEnv, c map[string]any) { c["nbf"] = "soon" }, want: ErrTokenClaims, msg: "wrong type"},
		{name: "iat in the future", claims: func(e *delegEnv, c map[string]any) { c["iat"] = now(e).Add(Leeway + 2*time.Second).Unix() },
			want: ErrTokenNotYetValid, msg: "iat is 32s ahead"},
		{name: "iat within the leeway", claims: func(e *delegEnv, c map[string]any) { c["iat"] = now(e).Add(Leeway).Unix() }},
		{name: "token signed, then the clock runs back", advance: -(Leeway + 2*time.Second), want: ErrTokenNotYetValid, msg: "iat is"},

		{name: "aud missing", claims: func(_ *delegEnv, c map[string]any) { delete(c, "aud") }, want: ErrTokenAudience, msg: `expected the string "meshguard:delegation"`},
		{name: "aud null", claims: func(_ *delegEnv, c map[string]any) { c["aud"] = nil }, want: ErrTokenAudience, msg: "expected the string"},
		{name: "aud a list holding ours", claims: func(_ *delegEnv, c map[string]any) { c["aud"] = []string{"meshguard:delegation"} }, want: ErrTokenAudience, msg: "expected the string"},
		{name: "aud a list without ours", claims: func(_ *delegEnv, c map[string]any) { c["aud"] = []string{"meshguard", "other"} }, want: ErrTokenAudience, msg: "expected the string"},
		{name: "aud the agent audience", claims: func(_ *delegEnv, c map[string]any) { c["aud"] = DefaultAudience }, want: ErrTokenAudience, msg: "expected the string"},
		{name: "aud a number", claims: func(_ *delegEnv, c map[string]any) { c["aud"] = 1 }, want: ErrTokenAudience, msg: "expected the string"},
		{name: "aud with another case", claims: func(_ *delegEnv, c map[string]any) { c["aud"] = "MeshGuard:Delegation" }, want: ErrTokenAudience, msg: "expected the string"},

		{name: "crit", hdr: func(_ *delegEnv, h map[string]any) { h["crit"] = []string{"exp"} }, want: ErrTokenMalformed, msg: "unsupported header parameter"},
		{name: "crit with b64", hdr: func(_ *delegEnv, h map[string]any) { h["crit"], h["b64"] = []string{"b64"}, false }, want: ErrTokenMalformed, msg: "unsupported header parameter"},
		{name: "jku", hdr: func(_ *delegEnv, h map[string]any) { h["jku"] = "https://attacker.example/jwks" }, want: ErrTokenMalformed, msg: "unsupported header parameter"},
		{name: "jwk", hdr: func(_ *delegEnv, h map[string]any) {
			h["jwk"] = map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}
		}, want: ErrTokenMalformed, msg: "unsupported header parameter"},
		{name: "x5u", hdr: func(_ *delegEnv, h map[string]any) { h["x5u"] = "https://attacker.example/cert" }, want: ErrTokenMalformed, msg: "unsupported header parameter"},
		{name: "x5c", hdr: func(_ *delegEnv, h map[string]any) { h["x5c"] = []string{"MIIB"} }, want: ErrTokenMalformed, msg: "unsupported header parameter"},
		{name: "x5t#S256", hdr: func(_ *delegEnv, h map[string]any) { h["x5t#S256"] = "AAAA" }, want: ErrTokenMalformed, msg: "unsupported header parameter"},
		{name: "cty", hdr: func(_ *delegEnv, h map[string]any) { h["cty"] = "JWT" }, want: ErrTokenMalformed, msg: "unsupported header parameter"},
		{name: "zip", hdr: func(_ *delegEnv, h map[string]any) { h["zip"] = "DEF" }, want: ErrTokenMalformed, msg: "unsupported header parameter"},

		{name: "kid missing", hdr: func(_ *delegEnv, h map[string]any) { delete(h, "kid") }, want: ErrTokenKID, msg: "without kid"},
		{name: "kid empty", hdr: func(_ *delegEnv, h map[string]any) { h["kid"] = "" }, want: ErrTokenKID, msg: "without kid"},
		{name: "kid null", hdr: func(_ *delegEnv, h map[string]any) { h["kid"] = nil }, want: ErrTokenKID, msg: "without kid"},
		{name: "kid a number", hdr: func(_ *delegEnv, h map[string]any) { h["kid"] = 1 }, want: ErrTokenMalformed, msg: "kid is not a string"},
		{name: "kid a list of our kids", hdr: func(e *delegEnv, h map[string]any) { h["kid"] = []string{e.es.kid} }, want: ErrTokenMalformed, msg: "kid is not a string"},
		{name: "kid unknown", hdr: func(_ *delegEnv, h map[string]any) { h["kid"] = "no-such-key" }, want: ErrTokenKID, msg: "not a current or unexpired retired key"},
		{name: "kid a path", hdr: func(e *delegEnv, h map[string]any) { h["kid"] = "../" + e.es.kid }, want: ErrTokenKID, msg: "not a current or unexpired retired key"},
		{name: "kid in another case", hdr: func(e *delegEnv, h map[string]any) { h["kid"] = strings.ToUpper(e.es.kid) }, want: ErrTokenKID, msg: "not a current or unexpired retired key"},
		{name: "kid of the current key, signed by the retired one", signer: func(e *delegEnv) *signingKey { return e.ed },
			hdr: func(_ *delegEnv, h map[string]any) { h["alg"] = AlgEdDSA }, want: ErrTokenAlg, msg: "the key named by kid is ES256"},
		{name: "kid of the retired key, alg of the current one", hdr: func(e *delegEnv, h map[string]any) { h["kid"] = e.ed.kid }, want: ErrTokenAlg, msg: "the key named by kid is EdDSA"},
		{name: "retired key within its window", signer: func(e *delegEnv) *signingKey { return e.ed },
			hdr: func(e *delegEnv, h map[string]any) { h["kid"], h["alg"] = e.ed.kid, AlgEdDSA }},
		{name: "retired key after its window", signer: func(e *delegEnv) *signingKey { return e.ed },
			hdr:   func(e *delegEnv, h map[string]any) { h["kid"], h["alg"] = e.ed.kid, AlgEdDSA },
			start: func(e *delegEnv) { e.clock.Advance(e.ed.verifyUntil.Sub(e.clock.Now())) },
			want:  ErrTokenKID, msg: "not a current or unexpired retired key"},

		{name: "typ missing", hdr: func(_ *delegEnv, h map[string]any) { delete(h, "typ") }, want: ErrTokenMalformed, msg: "typ must be delegation+jwt"},
		{name: "typ JWT", hdr: func(_ *delegEnv, h map[string]any) { h["typ"] = "JWT" }, want: ErrTokenMalformed, msg: "typ must be delegation+jwt"},
		{name: "typ in another case", hdr: func(_ *delegEnv, h map[string]any) { h["typ"] = "Delegation+JWT" }, want: ErrTokenMalformed, msg: "typ must be delegation+jwt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newDelegEnv(t)
			if tc.start != nil {
				tc.start(e)
			}
			at := e.clock.Now().Unix()
			h := map[string]any{"alg": AlgES256, "kid": e.es.kid, "typ": typDelegation}
			c := map[string]any{"iss": DefaultIssuer, "aud": DefaultAudience + DelegationAudienceSuffix, "sub": e.agent.ID,
				"act": map[string]any{"sub": NewAgentID()}, "iat": at, "exp": at + 600, "jti": "j1"}
			if tc.hdr != nil {
				tc.hdr(e, h)
			}
			if tc.claims != nil {
				tc.claims(e, c)
			}
			signer := e.es
			if tc.signer != nil {
				signer = tc.signer(e)
			}
			tok := signToken(t, signer, nil, h, c)
			e.clock.Advance(tc.advance)
			g, err := e.verifier.VerifyDelegation(tok)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("VerifyDelegation = %+v, %v; want %v saying %q", g, err, tc.want, tc.msg)
			}
			assertNoLeak(t, err, tok)
		})
	}
}
