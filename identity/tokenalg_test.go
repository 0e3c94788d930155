package identity

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestTokenAlg: TokenAlg reads alg with the verifier's own header parser,
// so it names an alg only for a header the verifier would read the same
// way, and refuses every header the verifier refuses.
func TestTokenAlg(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	issued, _ := e.issue(t)
	seg := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) + ".e30.c2ln" }
	tests := []struct {
		name    string
		token   string
		want    string
		wantErr error
	}{
		{"an issued token", issued, AlgEdDSA, nil},
		{"HS256", seg(`{"alg":"HS256","typ":"JWT"}`), AlgHS256, nil},
		{"no alg", seg(`{"typ":"JWT"}`), "", nil},
		{"a key spelt ALG", seg(`{"ALG":"HS256"}`), "", ErrTokenMalformed},
		{"a crit parameter", seg(`{"alg":"HS256","crit":["exp"]}`), "", ErrTokenMalformed},
		{"alg twice", seg(`{"alg":"EdDSA","alg":"HS256"}`), "", ErrTokenMalformed},
		{"alg not a string", seg(`{"alg":1}`), "", ErrTokenMalformed},
		{"not a JSON object", seg(`[]`), "", ErrTokenMalformed},
		{"not base64url", "e30*.e30.c2ln", "", ErrTokenMalformed},
		{"no dot", "eyJhbGciOiJIUzI1NiJ9", "", ErrTokenMalformed},
		{"an empty header", ".e30.c2ln", "", ErrTokenMalformed},
		{"empty", "", "", ErrTokenMalformed},
		{"too large", seg(`{"alg":"HS256"}`) + strings.Repeat("a", MaxTokenSize), "", ErrTokenTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TokenAlg(tc.token)
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("TokenAlg = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
			if err == nil {
				return
			}
			// Whatever TokenAlg refuses, the verifier refuses too.
			if _, verr := e.verifier.Verify(t.Context(), tc.token); verr == nil {
				t.Fatalf("the verifier accepted a token TokenAlg refuses")
			}
		})
	}
}
