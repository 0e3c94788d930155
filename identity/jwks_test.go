package identity

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

func TestJWKSVerifiesTokensWithJWX(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			e := newTestEnv(t, alg)
			tok, claims := e.issue(t)
			doc, err := e.keys.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			set, err := jwk.Parse(doc)
			if err != nil {
				t.Fatalf("jwx cannot parse our JWKS: %v\n%s", err, doc)
			}
			// An independent implementation verifies signature and claims,
			// as Envoy's jwt_authn would.
			parsed, err := jwt.Parse([]byte(tok),
				jwt.WithKeySet(set),
				jwt.WithClock(jwt.ClockFunc(e.clock.Now)),
				jwt.WithIssuer(DefaultIssuer),
				jwt.WithAudience(DefaultAudience),
			)
			if err != nil {
				t.Fatalf("jwx rejects our token: %v", err)
			}
			if parsed.Subject() != claims.Subject || parsed.JwtID() != claims.ID {
				t.Errorf("jwx read sub %q jti %q, want %q %q", parsed.Subject(), parsed.JwtID(), claims.Subject, claims.ID)
			}
			if tier, _ := parsed.Get("tier"); tier != "trusted" {
				t.Errorf("tier claim = %v", tier)
			}

			// And the other way round: a token jwx signs with our private
			// key passes our Verifier (same JWS encoding, e.g. ES256 R||S).
			k := e.current(t)
			var priv any = k.edKey
			if k.ecKey != nil {
				priv = k.ecKey
			}
			h := jws.NewHeaders()
			if err := h.Set("kid", k.kid); err != nil {
				t.Fatal(err)
			}
			payload, _ := json.Marshal(e.claims())
			signed, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(alg), priv, jws.WithProtectedHeaders(h)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.verifier.Verify(context.Background(), string(signed)); err != nil {
				t.Fatalf("our Verifier rejects a jwx-signed token: %v", err)
			}
		})
	}
}

func TestJWKSHoldsPublicKeysOnly(t *testing.T) {
	tests := []struct {
		alg    string
		fields []string
		kty    string
		crv    string
	}{
		{AlgEdDSA, []string{"alg", "crv", "kid", "kty", "use", "x"}, "OKP", "Ed25519"},
		{AlgES256, []string{"alg", "crv", "kid", "kty", "use", "x", "y"}, "EC", "P-256"},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			e := newTestEnv(t, tc.alg)
			doc, err := e.keys.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			var parsed struct {
				Keys []map[string]string `json:"keys"`
			}
			if err := json.Unmarshal(doc, &parsed); err != nil {
				t.Fatalf("JWKS is not {\"keys\":[...]} of strings: %v\n%s", err, doc)
			}
			if len(parsed.Keys) != 1 {
				t.Fatalf("%d keys, want 1", len(parsed.Keys))
			}
			k := parsed.Keys[0]
			var names []string
			for name := range k {
				names = append(names, name)
			}
			slices.Sort(names)
			if diff := cmp.Diff(tc.fields, names); diff != "" {
				t.Errorf("JWK fields (-want +got):\n%s", diff)
			}
			kid, _, _ := e.keys.Keyring().Current()
			want := map[string]string{"kty": tc.kty, "crv": tc.crv, "kid": kid, "alg": tc.alg, "use": "sig"}
			for name, v := range want {
				if k[name] != v {
					t.Errorf("%s = %q, want %q", name, k[name], v)
				}
			}
			if strings.Contains(string(doc), `"d"`) {
				t.Fatalf("JWKS contains private key material:\n%s", doc)
			}
		})
	}
}

func TestJWKSEmptyKeyring(t *testing.T) {
	ring, err := NewKeyring(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ring.JWKS(newFakeClock().Now())
	if err != nil {
		t.Fatal(err)
	}
	if string(doc) != `{"keys":[]}` {
		t.Errorf("empty JWKS = %s", doc)
	}
}

func TestDiscovery(t *testing.T) {
	d, err := NewDiscovery("", "https://meshguard.example.com:3100/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                                "meshguard",
		"jwks_uri":                              "https://meshguard.example.com:3100/.well-known/jwks.json",
		"id_token_signing_alg_values_supported": []any{"EdDSA", "ES256"},
		"response_types_supported":              []any{"id_token"},
		"subject_types_supported":               []any{"public"},
		"claims_supported":                      []any{"iss", "sub", "aud", "name", "tier", "tags", "iat", "nbf", "exp", "jti"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("discovery (-want +got):\n%s", diff)
	}

	d, err = NewDiscovery("https://mg.example.com", "http://10.0.0.1:3100/mg")
	if err != nil || d.Issuer != "https://mg.example.com" || d.JWKSURI != "http://10.0.0.1:3100/mg/.well-known/jwks.json" {
		t.Errorf("with path: %+v, %v", d, err)
	}

	for _, bad := range []string{"", "meshguard.example.com", "ftp://x", "https://", "https://x/?a=b", "https://x/#f", "https://u:p@x/"} {
		if _, err := NewDiscovery("", bad); err == nil {
			t.Errorf("NewDiscovery base URL %q accepted", bad)
		}
	}
}
