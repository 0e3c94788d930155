package identity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestPublicKeyringVerifiesWhatKeysSign: a JWKS published by Keys, read
// back by NewPublicKeyring, verifies the agent and delegation tokens those
// keys sign, for each algorithm, and cannot sign itself.
func TestPublicKeyringVerifiesWhatKeysSign(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			e := newTestEnv(t, alg)
			jwks, err := e.keys.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			ring, err := NewPublicKeyring(jwks, 0)
			if err != nil {
				t.Fatalf("NewPublicKeyring(%s): %v", jwks, err)
			}
			if _, _, ok := ring.Current(); ok {
				t.Error("a public keyring has a current (signing) key")
			}
			v, err := NewVerifier(VerifierConfig{Keys: ring, Agents: e.agents, Now: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := e.issue(t)
			got, err := v.Verify(context.Background(), tok)
			if err != nil || got.Agent.ID != e.agent.ID {
				t.Fatalf("Verify = %+v, %v; want the agent", got, err)
			}
			// A token signed by a key the JWKS does not hold fails.
			other := newTestEnv(t, alg)
			foreign, _, err := other.issuer.Issue(e.agent, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(context.Background(), foreign); !errors.Is(err, ErrTokenKID) {
				t.Errorf("a foreign key's token: %v, want ErrTokenKID", err)
			}
			if pub, err := ring.JWKS(e.clock.Now()); err != nil || string(pub) != `{"keys":[]}` {
				t.Errorf("JWKS of a public keyring = %s, %v; want nothing republished", pub, err)
			}
		})
	}
}

// TestPublicKeyringRefuses: every malformed JWKS is an ErrInvalidKey naming
// what is wrong.
func TestPublicKeyringRefuses(t *testing.T) {
	const x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" // 32 bytes
	tests := []struct {
		name, jwks, want string
	}{
		{"not JSON", `{`, "expected"},
		{"unknown top-level member", `{"keys":[],"extra":1}`, "unknown field"},
		{"private member", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","d":"` + x + `","kid":"a","alg":"EdDSA"}]}`, "unknown field"},
		{"no kid", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","alg":"EdDSA"}]}`, "kid must be"},
		{"HS256", `{"keys":[{"kty":"oct","k":"` + x + `","kid":"a","alg":"HS256"}]}`, "unknown field"},
		{"alg none", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","alg":"none"}]}`, "expected OKP Ed25519"},
		{"kty and alg disagree", `{"keys":[{"kty":"EC","crv":"Ed25519","x":"` + x + `","kid":"a","alg":"EdDSA"}]}`, "expected OKP Ed25519"},
		{"short Ed25519 key", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"a","alg":"EdDSA"}]}`, "32 bytes"},
		{"point off P-256", `{"keys":[{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + x + `","kid":"a","alg":"ES256"}]}`, "not on P-256"},
		{"encryption key", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","alg":"EdDSA","use":"enc"}]}`, "expected sig"},
		{"duplicate kid", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","alg":"EdDSA"},{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","alg":"EdDSA"}]}`, "appears twice"},
		{"too many keys", `{"keys":[` + strings.Repeat(`{},`, MaxJWKSKeys) + `{}]}`, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPublicKeyring([]byte(tt.jwks), 0)
			if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewPublicKeyring(%s) = %v; want ErrInvalidKey mentioning %q", tt.jwks, err, tt.want)
			}
		})
	}
}

// FuzzPublicKeyring: no input panics; what is accepted holds only
// verify-only keys, is what the document says read as plain JSON (no second
// reading: checkJWKSReading), and round-trips: its keys written back as a
// JWKS parse to the same keys, in the same order.
func FuzzPublicKeyring(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a","alg":"EdDSA","use":"sig"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, jwks []byte) {
		ring, err := NewPublicKeyring(jwks, 0)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("refusal %v is not ErrInvalidKey", err)
			}
			return
		}
		if _, _, ok := ring.Current(); ok {
			t.Fatal("accepted JWKS yields a signing key")
		}
		checkJWKSReading(t, jwks, ring)
		again, err := NewPublicKeyring(publicJWKS(t, ring), 0)
		if err != nil {
			t.Fatalf("the keyring's own JWKS does not parse: %v", err)
		}
		if !slices.EqualFunc(ring.ordered, again.ordered, sameKey) {
			t.Fatal("the keyring changed in the round trip")
		}
	})
}
