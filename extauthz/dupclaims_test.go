package extauthz

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/identity"
)

// TestGRPCRepeatedClaimsAreRefused: the JSON objects that reach a decision
// at ext_authz are the token's JWS header and payload (context_extensions
// is a proto map and metadata_context is not read; the X-MeshGuard-Context
// header is ignored). An HS256 token from another holder of JWT_SECRET
// whose payload names one agent first and another last was verified as
// the last (encoding/json keeps it) while a first-wins reader — Envoy's
// jwt_authn, the upstream — sees the first. It is refused with 401 saying
// which claim repeats, at the real engine behind a real gRPC server.
func TestGRPCRepeatedClaimsAreRefused(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := identity.NewVerifier(identity.VerifierConfig{Keys: m.f.Keys, Agents: m.f.Agents, HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	cached := identity.NewCachedVerifier(v, identity.CacheConfig{})
	e, err := engine.New(engine.Config{Tokens: cached, Delegations: cached, Delegator: m.f.Issuer, Agents: m.f.Agents,
		Policies: m.f.Policies, Limiter: m.f.Limiter, Recorder: m.f.Audit, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	client := startGRPC(t, e, testLog(t, nil))
	now := time.Now().Unix()
	hs256 := func(payload string) string {
		b64 := base64.RawURLEncoding
		input := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64.EncodeToString([]byte(payload))
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		return input + "." + b64.EncodeToString(mac.Sum(nil))
	}
	claims := func(sub string) string {
		return fmt.Sprintf(`"iss":%q,"aud":%q,"iat":%d,"exp":%d,"jti":"j-%s","tier":"verified","sub":%q`,
			identity.DefaultIssuer, identity.DefaultAudience, now, now+600, sub, sub)
	}
	tests := []struct {
		name, token string
		code        codes.Code
		message     string
	}{
		{"control: one sub", hs256("{" + claims(m.res.ID) + "}"), codes.OK, ""},
		{"sub twice", hs256(`{"sub":"` + m.orch.ID + `",` + claims(m.res.ID) + "}"), codes.Unauthenticated, `claims: member \"sub\" appears twice`},
		{"an escaped second spelling", hs256("{" + claims(m.res.ID) + `,"\u0073ub":"` + m.orch.ID + `"}`), codes.Unauthenticated, `claims: member \"sub\" appears twice`},
		{"alg twice in the header", strings.Replace(hs256("{"+claims(m.res.ID)+"}"), base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)),
			base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","alg":"HS256","typ":"JWT"}`)), 1), codes.Unauthenticated, `header: member \"alg\" appears twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := check(t, client, envoyCheck(call{method: "GET", host: "docs.internal", path: "/docs/readme", token: tc.token}))
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.code {
				t.Fatalf("code %v (%s), want %v", got, resp.GetDeniedResponse().GetBody(), tc.code)
			}
			if tc.code == codes.OK {
				return
			}
			body := resp.GetDeniedResponse().GetBody()
			if resp.GetDeniedResponse().GetStatus().GetCode() != 401 || !strings.Contains(body, tc.message) {
				t.Errorf("denial %d %s, want 401 saying %s", resp.GetDeniedResponse().GetStatus().GetCode(), body, tc.message)
			}
		})
	}
}
