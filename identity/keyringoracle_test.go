package identity

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// publicJWKS writes a keyring's keys as a JWKS, as a test-side encoder
// independent of NewPublicKeyring.
func publicJWKS(t testing.TB, r *Keyring) []byte {
	t.Helper()
	keys := make([]map[string]string, 0, len(r.ordered))
	for _, k := range r.ordered {
		m := map[string]string{"kid": k.kid, "alg": k.alg, "use": "sig"}
		switch {
		case k.edPub != nil:
			m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64.EncodeToString(k.edPub)
		case k.ecPub != nil:
			raw, err := k.ecPub.Bytes() // 0x04 || X || Y
			if err != nil {
				t.Fatal(err)
			}
			m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64.EncodeToString(raw[1:33]), b64.EncodeToString(raw[33:])
		default:
			t.Fatalf("key %q has no public key", k.kid)
		}
		keys = append(keys, m)
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameKey(a, b *signingKey) bool {
	return a.kid == b.kid && a.alg == b.alg && bytes.Equal(a.edPub, b.edPub) &&
		(a.ecPub == nil) == (b.ecPub == nil) && (a.ecPub == nil || a.ecPub.Equal(b.ecPub))
}

// checkJWKSReading reads the accepted document as plain JSON maps (which
// keep the last of two members and match names exactly) and insists the
// keyring holds exactly those keys, public and for signatures.
func checkJWKSReading(t testing.TB, jwks []byte, r *Keyring) {
	t.Helper()
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &doc); err != nil {
		t.Fatalf("accepted a JWKS plain JSON cannot read: %v", err)
	}
	if len(doc.Keys) != len(r.ordered) {
		t.Fatalf("%d keys in the document, %d in the keyring", len(doc.Keys), len(r.ordered))
	}
	for i, m := range doc.Keys {
		k := r.ordered[i]
		str := func(name string) string { s, _ := m[name].(string); return s }
		if _, private := m["d"]; private || (m["use"] != nil && str("use") != "sig") {
			t.Fatalf("keys[%d]: accepted a private or non-signing key", i)
		}
		x, errX := b64.DecodeString(str("x"))
		switch {
		case k.kid != str("kid") || k.alg != str("alg"):
			t.Fatalf("keys[%d]: kid %q alg %q in the keyring, %q %q in the document", i, k.kid, k.alg, str("kid"), str("alg"))
		case errX != nil:
			t.Fatalf("keys[%d]: x is not base64url in the document", i)
		case k.edPub != nil && (str("kty") != "OKP" || str("crv") != "Ed25519" || !bytes.Equal(k.edPub, x)):
			t.Fatalf("keys[%d]: the Ed25519 key is not the document's", i)
		case k.ecPub != nil:
			y, _ := b64.DecodeString(str("y"))
			want, err := ecdsa.ParseUncompressedPublicKey(k.ecPub.Curve, append(append([]byte{4}, x...), y...))
			if str("kty") != "EC" || str("crv") != "P-256" || err != nil || !want.Equal(k.ecPub) {
				t.Fatalf("keys[%d]: the P-256 key is not the document's", i)
			}
		}
	}
}

// keyringSeeds are FuzzPublicKeyring's committed seeds, built from the
// fuzz fixture's fixed keys: accepted ones start with "valid_".
func keyringSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	ed := fixedStoredKey(t, AlgEdDSA, "fuzz-ed25519")
	es := fixedStoredKey(t, AlgES256, "fuzz-p256")
	ring, err := NewKeyring([]StoredKey{ed, es}, 0)
	if err != nil {
		t.Fatal(err)
	}
	both, err := ring.JWKS(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	edOnly := bytes.Replace(both, both[len(`{"keys":[`):bytes.Index(both, []byte(`},{`))+2], nil, 1)
	ecKey := both[len(`{"keys":[`) : bytes.Index(both, []byte(`},{`))+1]
	with := func(extra string) []byte { // ecKey with a member added
		return []byte(`{"keys":[` + string(ecKey[:len(ecKey)-1]) + `,` + extra + `}]}`)
	}
	return map[string][]byte{
		"valid_both":        both,
		"valid_ed25519":     edOnly,
		"valid_empty":       []byte(`{"keys":[]}`),
		"kid_twice":         with(`"kid":"other"`),
		"x_twice":           with(`"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"`),
		"kid_as_KID":        bytes.Replace(both, []byte(`"kid":`), []byte(`"KID":`), 1),
		"keys_twice":        []byte(`{"keys":[],"keys":[` + string(ecKey) + `]}`),
		"private_d":         with(`"d":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"`),
		"use_enc":           bytes.Replace(both, []byte(`"use":"sig"`), []byte(`"use":"enc"`), 1),
		"alg_none":          bytes.Replace(both, []byte(`"alg":"ES256"`), []byte(`"alg":"none"`), 1),
		"off_curve":         bytes.Replace(both, ecKey[bytes.Index(ecKey, []byte(`"y":"`))+5:len(ecKey)-2], []byte("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"), 1),
		"duplicate_kid":     []byte(`{"keys":[` + string(ecKey) + `,` + string(ecKey) + `]}`),
		"not_json":          []byte(`{"keys":[`),
		"oct_hs256":         []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"}]}`),
		"unknown_member":    []byte(`{"keys":[],"jku":"https://attacker.example"}`),
		"keys_not_a_list":   []byte(`{"keys":{}}`),
		"trailing_document": []byte(`{"keys":[]}{"keys":[` + string(ecKey) + `]}`),
		"trailing_garbage":  []byte(`{}00`),
	}
}

// seedRefusals says why each invalid seed is refused.
var seedRefusals = map[string]string{
	"kid_twice": "appears twice", "x_twice": "appears twice", "keys_twice": "appears twice",
	"kid_as_KID": "differs only in case", "private_d": "unknown field", "use_enc": "expected sig",
	"alg_none": "expected OKP Ed25519", "off_curve": "not on P-256", "duplicate_kid": "appears twice",
	"not_json": "expected", "oct_hs256": "unknown field", "unknown_member": "unknown field",
	"keys_not_a_list": "expected", "trailing_document": "data after the document", "trailing_garbage": "data after the document",
}

// TestPublicKeyringSeedCorpus keeps the committed corpus what keyringSeeds
// builds: valid_ seeds parse (and pass the fuzz oracles), the rest are
// refused. Regenerate with -update-fuzz-seeds.
func TestPublicKeyringSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzPublicKeyring")
	seeds := keyringSeeds(t)
	if *updateFuzzSeeds {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("go test fuzz v1\n[]byte("+quoteGo(b)+")\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range seeds {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("seed missing (run with -update-fuzz-seeds): %v", err)
			}
			if string(b) != "go test fuzz v1\n[]byte("+quoteGo(want)+")\n" {
				t.Fatal("committed seed differs from keyringSeeds (run with -update-fuzz-seeds)")
			}
			ring, err := NewPublicKeyring(want, 0)
			if valid := name[:6] == "valid_"; valid != (err == nil) {
				t.Fatalf("NewPublicKeyring = %v; seed should be valid: %v", err, valid)
			}
			if why := seedRefusals[name]; err != nil && (!errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), why)) {
				t.Fatalf("NewPublicKeyring = %v; want ErrInvalidKey saying %q", err, why)
			}
			if err == nil {
				checkJWKSReading(t, want, ring)
			}
		})
	}
}

func quoteGo(b []byte) string {
	q, _ := json.Marshal(string(b))
	return string(q)
}
