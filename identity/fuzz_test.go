package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
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
	// signed holds the signing inputs (header.payload) of the agent
	// tokens the fixture signed, with the alg and kid that signed each: the
	// only inputs a successful Verify may carry.
	signed map[string][2]string
	// delegations holds the delegation tokens the fixture signed, with
	// the grant each says: the only ones VerifyDelegation may accept.
	delegations map[string]DelegationGrant
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
		ed: ring.byKID[ed.KID], es: ring.byKID[es.KID], signed: map[string][2]string{}, delegations: map[string]DelegationGrant{},
	}
}

func (fx *fuzzFixture) claims() map[string]any {
	now := int64(1772366400) // 2026-03-01T12:00:00Z
	return map[string]any{
		"iss": DefaultIssuer, "sub": fx.agent.ID, "aud": DefaultAudience, "name": "fuzz",
		"tier": "verified", "tags": []string{"a"}, "iat": now, "nbf": now, "exp": now + 3600, "jti": "fuzz-jti",
	}
}

// wantClaims are the claims of fx.claims() as Verify must return them.
func (fx *fuzzFixture) wantClaims() Claims {
	now := time.Unix(1772366400, 0).UTC()
	return Claims{Issuer: DefaultIssuer, Subject: fx.agent.ID, Audience: DefaultAudience, Name: "fuzz", Tier: trust.Verified,
		Tags: []string{"a"}, IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Hour), ID: "fuzz-jti"}
}

// sign signs and remembers the signing input as legitimately ours.
func (fx *fuzzFixture) sign(tb testing.TB, key *signingKey, secret []byte, hdr map[string]any) string {
	tok := signToken(tb, key, secret, hdr, fx.claims())
	fx.signed[tok[:strings.LastIndexByte(tok, '.')]] = [2]string{hdr["alg"].(string), fx.kidOf(hdr)}
	return tok
}

func (fx *fuzzFixture) kidOf(hdr map[string]any) string {
	if hdr["alg"] == AlgHS256 {
		return "" // the secret has no kid
	}
	return hdr["kid"].(string)
}

// fuzzActor is the delegate of the fixture's delegation token.
const fuzzActor = "agent_fuzzactorfuzzactorfu"

// delegationClaims are a valid delegation token's claims, and the grant
// VerifyDelegation must return for them.
func (fx *fuzzFixture) delegationClaims() (map[string]any, DelegationGrant) {
	now := int64(1772366400)
	return map[string]any{"iss": DefaultIssuer, "aud": DefaultAudience + DelegationAudienceSuffix, "sub": fx.agent.ID,
			"act": map[string]any{"sub": fuzzActor}, "scope": "read:* write:email", "max_chain": 2, "iat": now, "exp": now + 600, "jti": "fuzz-deleg"},
		DelegationGrant{Root: fx.agent.ID, Actors: []string{fuzzActor}, Scope: []string{"read:*", "write:email"}, MaxChain: 2,
			IssuedAt: time.Unix(now, 0).UTC(), ExpiresAt: time.Unix(now+600, 0).UTC(), ID: "fuzz-deleg"}
}

// signDelegation signs a valid delegation token and remembers its grant.
func (fx *fuzzFixture) signDelegation(tb testing.TB) string {
	c, g := fx.delegationClaims()
	tok := signToken(tb, fx.ed, nil, map[string]any{"alg": AlgEdDSA, "kid": fx.ed.kid, "typ": typDelegation}, c)
	fx.delegations[tok[:strings.LastIndexByte(tok, '.')]] = g
	return tok
}

// signedRaw signs raw header and payload JSON with key, remembering nothing:
// for tokens that are ours by signature but must still be refused.
func (fx *fuzzFixture) signedRaw(tb testing.TB, hdr string, payload map[string]any, extra string) string {
	p, err := json.Marshal(payload)
	if err != nil {
		tb.Fatal(err)
	}
	if extra != "" {
		p = append(append(p[:len(p)-1:len(p)-1], ","+extra...), '}')
	}
	return signRaw(tb, fx.ed, nil, []byte(hdr), p)
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
	edHdr := `{"alg":"EdDSA","kid":"` + fx.ed.kid + `","typ":"JWT"}`
	delHdr := `{"alg":"EdDSA","kid":"` + fx.ed.kid + `","typ":"delegation+jwt"}`
	dc, _ := fx.delegationClaims()
	future := maps.Clone(dc)
	future["nbf"] = int64(1772366400 + 3600)
	audList := maps.Clone(dc)
	audList["aud"] = []string{DefaultAudience + DelegationAudienceSuffix}
	return map[string]string{
		"valid_delegation":       fx.signDelegation(tb),
		"dup_alg_header":         fx.signedRaw(tb, `{"alg":"EdDSA","alg":"EdDSA","kid":"`+fx.ed.kid+`","typ":"JWT"}`, fx.claims(), ""),
		"dup_tier":               fx.signedRaw(tb, edHdr, fx.claims(), `"tier":"privileged"`),
		"dup_sub_folded":         fx.signedRaw(tb, edHdr, fx.claims(), `"ſub":"agent_fuzzfuzzfuzzfuzzfuzz"`),
		"exp_spelt_Exp":          fx.signedRaw(tb, edHdr, deleted(fx.claims(), "exp"), `"Exp":1772370000`),
		"delegation_dup_scope":   fx.signedRaw(tb, delHdr, dc, `"scope":"*"`),
		"delegation_dup_act_sub": fx.signedRaw(tb, delHdr, deleted(dc, "act"), `"act":{"sub":"`+fuzzActor+`","sub":"`+fx.agent.ID+`"}`),
		"delegation_nbf_future":  fx.signedRaw(tb, delHdr, future, ""),
		"delegation_aud_list":    fx.signedRaw(tb, delHdr, audList, ""),
		"delegation_crit":        fx.signedRaw(tb, `{"alg":"EdDSA","kid":"`+fx.ed.kid+`","typ":"delegation+jwt","crit":["exp"]}`, dc, ""),
		"valid_eddsa":            edTok,
		"valid_hs256":            hsTok,
		"alg_none":               none + "." + seg[1] + ".",
		"alg_none_sig":           none + "." + seg[1] + "." + seg[2],
		"hs256_confusion":        confusion,
		"truncated":              edTok[:len(edTok)/2],
		"tampered_payload":       strings.Split(tamperedTok, ".")[0] + "." + strings.Split(tamperedTok, ".")[1] + "." + seg[2],
		"kid_unknown":            b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"nope"}`)) + "." + seg[1] + "." + seg[2],
		"jku_header":             b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"`+fx.ed.kid+`","jku":"http://x"}`)) + "." + seg[1] + "." + seg[2],
		"alg_swapped_es256":      b64.EncodeToString([]byte(`{"alg":"ES256","kid":"`+fx.ed.kid+`"}`)) + "." + seg[1] + "." + seg[2],
		"empty":                  "",
		"dots":                   "..",
		"garbage":                "not a token at all",
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
			fx.signed[tok[:strings.LastIndexByte(tok, '.')]] = [2]string{AlgES256, fx.es.kid}
		}
	}
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, token string) {
		// A delegation token verifies only if the fixture signed it, and
		// then says exactly what it was signed with.
		if g, err := fx.verifier.VerifyDelegation(token); err == nil {
			want, ok := fx.delegations[token[:strings.LastIndexByte(token, '.')]]
			if !ok {
				t.Fatalf("VerifyDelegation accepted a token the fixture never signed: %q", token)
			}
			if diff := cmp.Diff(want, g); diff != "" {
				t.Fatalf("the verified grant is not the signed one (-signed +verified):\n%s", diff)
			}
		} else if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("VerifyDelegation mis-classified garbage: %v", err)
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
		key, ok := fx.signed[token[:strings.LastIndexByte(token, '.')]]
		if !ok {
			t.Fatalf("accepted a token whose header and payload the fixture never signed: %q", token)
		}
		// The claims it was signed with, the agent it names, the lower
		// of the two tiers, and the key that signed it.
		want := Verified{Claims: fx.wantClaims(), Agent: fx.agent, Tier: trust.Verified, Alg: key[0], KID: key[1]}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("the verified token is not the signed one (-signed +verified):\n%s", diff)
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
			if strings.Contains(name, "delegation") {
				_, err = fx.verifier.VerifyDelegation(tok)
			} else {
				_, err = fx.verifier.Verify(context.Background(), tok)
			}
			if valid := strings.HasPrefix(name, "valid_"); valid != (err == nil) {
				t.Fatalf("Verify = %v; seed %s should be valid: %v", err, name, valid)
			}
		})
	}
}

// deleted returns m without key.
func deleted(m map[string]any, key string) map[string]any {
	m = maps.Clone(m)
	delete(m, key)
	return m
}
