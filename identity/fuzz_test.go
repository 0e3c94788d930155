package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/trust"
)

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzVerify from the fixture")

// fuzzFixture is a fully deterministic verifier: fixed keys, clock, agent
// and HS256 secret, so the committed seed corpus keeps holding valid tokens.
type fuzzFixture struct {
	verifier *Verifier
	cached   *CachedVerifier
	agent    Agent
	ed, es   *signingKey
	// signed holds the signing inputs (header.payload) the fixture
	// signed: the only inputs a successful Verify may carry.
	signed map[string]bool
}

func fixedStoredKey(tb testing.TB, alg string, seed string) StoredKey {
	tb.Helper()
	d := sha256.Sum256([]byte(seed))
	var priv any
	switch alg {
	case AlgEdDSA:
		priv = ed25519.NewKeyFromSeed(d[:])
	case AlgES256:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
		if err != nil {
			tb.Fatal(err)
		}
		priv = k
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	kid, err := thumbprint(priv.(crypto.Signer).Public())
	if err != nil {
		tb.Fatal(err)
	}
	return StoredKey{KID: kid, Alg: alg, PrivateDER: der, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func newFuzzFixture(tb testing.TB) *fuzzFixture {
	tb.Helper()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	ed := fixedStoredKey(tb, AlgEdDSA, "fuzz-ed25519")
	es := fixedStoredKey(tb, AlgES256, "fuzz-p256")
	es.CreatedAt = es.CreatedAt.Add(time.Hour) // es is current, ed unretired too
	ring, err := NewKeyring([]StoredKey{ed, es}, 0)
	if err != nil {
		tb.Fatal(err)
	}
	agent := Agent{ID: "agent_fuzzfuzzfuzzfuzzfuzz", Name: "fuzz", TrustTier: trust.Verified, Status: StatusActive}
	v, err := NewVerifier(VerifierConfig{Keys: ring, Agents: newFakeAgents(agent), HS256Secret: testSecret, Now: clock})
	if err != nil {
		tb.Fatal(err)
	}
	return &fuzzFixture{
		verifier: v, cached: NewCachedVerifier(v, CacheConfig{}), agent: agent,
		ed: ring.byKID[ed.KID], es: ring.byKID[es.KID], signed: map[string]bool{},
	}
}

func (fx *fuzzFixture) claims() map[string]any {
	now := int64(1772366400) // 2026-03-01T12:00:00Z
	return map[string]any{
		"iss": DefaultIssuer, "sub": fx.agent.ID, "aud": DefaultAudience, "name": "fuzz",
		"tier": "verified", "tags": []string{"a"}, "iat": now, "nbf": now, "exp": now + 3600, "jti": "fuzz-jti",
	}
}

// sign signs and remembers the signing input as legitimately ours.
func (fx *fuzzFixture) sign(tb testing.TB, key *signingKey, secret []byte, hdr map[string]any) string {
	tok := signToken(tb, key, secret, hdr, fx.claims())
	fx.signed[tok[:strings.LastIndexByte(tok, '.')]] = true
	return tok
}

// seeds are the named seed tokens. Valid ones come first.
func (fx *fuzzFixture) seeds(tb testing.TB) map[string]string {
	edTok := fx.sign(tb, fx.ed, nil, map[string]any{"alg": AlgEdDSA, "kid": fx.ed.kid, "typ": "JWT"})
	hsTok := fx.sign(tb, nil, testSecret, map[string]any{"alg": AlgHS256, "typ": "JWT"})
	// Crafted, never legitimately signed.
	seg := strings.Split(edTok, ".")
	none := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	confusion := signToken(tb, nil, []byte(fx.ed.edPub), map[string]any{"alg": AlgHS256, "kid": fx.ed.kid, "typ": "JWT"}, fx.claims())
	tampered := fx.claims()
	tampered["tier"] = "privileged"
	tamperedTok := signToken(tb, fx.ed, nil, map[string]any{"alg": AlgEdDSA, "kid": fx.ed.kid}, tampered)
	return map[string]string{
		"valid_eddsa":       edTok,
		"valid_hs256":       hsTok,
		"alg_none":          none + "." + seg[1] + ".",
		"alg_none_sig":      none + "." + seg[1] + "." + seg[2],
		"hs256_confusion":   confusion,
		"truncated":         edTok[:len(edTok)/2],
		"tampered_payload":  strings.Split(tamperedTok, ".")[0] + "." + strings.Split(tamperedTok, ".")[1] + "." + seg[2],
		"kid_unknown":       b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"nope"}`)) + "." + seg[1] + "." + seg[2],
		"jku_header":        b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"`+fx.ed.kid+`","jku":"http://x"}`)) + "." + seg[1] + "." + seg[2],
		"alg_swapped_es256": b64.EncodeToString([]byte(`{"alg":"ES256","kid":"`+fx.ed.kid+`"}`)) + "." + seg[1] + "." + seg[2],
		"empty":             "",
		"dots":              "..",
		"garbage":           "not a token at all",
	}
}

// esSeedName is the ES256 seed: its signature is randomised, so it is
// signed once (with -update-fuzz-seeds) and then only checked to verify.
const esSeedName = "valid_es256"

func FuzzVerify(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, tok := range fx.seeds(f) {
		f.Add(tok)
	}
	f.Add(fx.sign(f, fx.es, nil, map[string]any{"alg": AlgES256, "kid": fx.es.kid, "typ": "JWT"}))
	// The committed ES256 seed was signed by the same fixed key.
	if b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", esSeedName)); err == nil {
		if tok, err := parseCorpusFile(b); err == nil && strings.Count(tok, ".") == 2 {
			fx.signed[tok[:strings.LastIndexByte(tok, '.')]] = true
		}
	}
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, token string) {
		// The fixture signs no delegation token, so none may verify.
		if g, err := fx.verifier.VerifyDelegation(token); err == nil || !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("VerifyDelegation accepted or mis-classified garbage: %+v, %v", g, err)
		}
		got, err := fx.verifier.Verify(ctx, token)
		cgot, cerr := fx.cached.Verify(ctx, token)
		if (err == nil) != (cerr == nil) {
			t.Fatalf("Verifier and CachedVerifier disagree: %v vs %v", err, cerr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) || !errors.Is(cerr, ErrInvalidToken) {
				t.Fatalf("garbage produced a non-rejection error: %v / %v", err, cerr)
			}
			return
		}
		if !fx.signed[token[:strings.LastIndexByte(token, '.')]] {
			t.Fatalf("accepted a token whose header and payload the fixture never signed: %q", token)
		}
		if got.Claims.Subject != fx.agent.ID || got.Tier != trust.Verified {
			t.Fatalf("unexpected result %+v", got)
		}
		if diff := cmp.Diff(got, *cgot); diff != "" {
			t.Fatalf("cached result differs:\n%s", diff)
		}
	})
}

// parseCorpusFile reads a one-string file in the go test fuzz v1 format.
func parseCorpusFile(b []byte) (string, error) {
	lines := strings.SplitN(strings.TrimRight(string(b), "\n"), "\n", 2)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "string(") || !strings.HasSuffix(lines[1], ")") {
		return "", errors.New("not a one-string go test fuzz v1 file")
	}
	return strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
}

func corpusFile(tok string) []byte {
	return []byte("go test fuzz v1\nstring(" + strconv.Quote(tok) + ")\n")
}

// TestFuzzSeedCorpus keeps the committed corpus meaningful: the valid seeds
// still verify against the fixture and the invalid ones are still refused.
// Regenerate with: go test ./identity -run TestFuzzSeedCorpus -update-fuzz-seeds
func TestFuzzSeedCorpus(t *testing.T) {
	fx := newFuzzFixture(t)
	seeds := fx.seeds(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if *updateFuzzSeeds {
		seeds[esSeedName] = fx.sign(t, fx.es, nil, map[string]any{"alg": AlgES256, "kid": fx.es.kid, "typ": "JWT"})
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, tok := range seeds {
			if err := os.WriteFile(filepath.Join(dir, name), corpusFile(tok), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	names := append(slices.Sorted(maps.Keys(seeds)), esSeedName)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("seed missing (run with -update-fuzz-seeds): %v", err)
			}
			tok, err := parseCorpusFile(b)
			if err != nil {
				t.Fatal(err)
			}
			if want, ok := seeds[name]; ok && tok != want {
				t.Fatalf("committed seed differs from the fixture's (run with -update-fuzz-seeds)")
			}
			_, err = fx.verifier.Verify(context.Background(), tok)
			if valid := strings.HasPrefix(name, "valid_"); valid != (err == nil) {
				t.Fatalf("Verify = %v; seed %s should be valid: %v", err, name, valid)
			}
		})
	}
}
