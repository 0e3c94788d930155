package identity

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestGenerateKey(t *testing.T) {
	for _, alg := range []string{"", AlgEdDSA, AlgES256} {
		t.Run("alg="+alg, func(t *testing.T) {
			k, err := GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			wantAlg := alg
			if alg == "" {
				wantAlg = DefaultAlg
			}
			if k.Alg != wantAlg {
				t.Errorf("Alg = %q, want %q", k.Alg, wantAlg)
			}
			priv, err := x509.ParsePKCS8PrivateKey(k.PrivateDER)
			if err != nil {
				t.Fatalf("PrivateDER is not PKCS#8: %v", err)
			}
			// The kid is the RFC 7638 thumbprint, as jwx computes it.
			pub, err := jwk.PublicKeyOf(priv)
			if err != nil {
				t.Fatal(err)
			}
			tp, err := pub.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.RawURLEncoding.EncodeToString(tp); k.KID != want {
				t.Errorf("KID = %q, want thumbprint %q", k.KID, want)
			}
			if !k.CreatedAt.IsZero() || !k.RetiredAt.IsZero() {
				t.Error("GenerateKey stamped times; the caller's clock should")
			}
		})
	}
	if _, err := GenerateKey("RS256"); !errors.Is(err, ErrUnsupportedAlg) {
		t.Errorf("GenerateKey(RS256) error = %v, want ErrUnsupportedAlg", err)
	}
	a, _ := GenerateKey(AlgEdDSA)
	b, _ := GenerateKey(AlgEdDSA)
	if a.KID == b.KID {
		t.Error("two generated keys share a kid")
	}
}

func TestNewKeyringRejectsBadKeys(t *testing.T) {
	ed, _ := GenerateKey(AlgEdDSA)
	es, _ := GenerateKey(AlgES256)
	mislabelled := ed
	mislabelled.Alg = AlgES256
	noKID := es
	noKID.KID = ""
	garbage := es
	garbage.PrivateDER = []byte("not DER")
	unknownAlg := ed
	unknownAlg.Alg = "HS256"
	tests := map[string][]StoredKey{
		"EdDSA key labelled ES256": {mislabelled},
		"missing kid":              {noKID},
		"bad DER":                  {garbage},
		"HS256 key":                {unknownAlg},
		"duplicate kid":            {ed, ed},
	}
	for name, keys := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := NewKeyring(keys, 0); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("NewKeyring error = %v, want ErrInvalidKey", err)
			}
		})
	}
}

func TestKeyringCurrentAndVerificationWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTTL := 24 * time.Hour
	window := maxTTL + Leeway + RetiredKeyGrace
	mk := func(created, retired time.Time) StoredKey {
		k, err := GenerateKey(AlgEdDSA)
		if err != nil {
			t.Fatal(err)
		}
		k.CreatedAt, k.RetiredAt = created, retired
		return k
	}
	oldest := mk(t0, t0.Add(time.Hour))
	old := mk(t0.Add(time.Hour), t0.Add(48*time.Hour))
	cur := mk(t0.Add(48*time.Hour), time.Time{})
	ring, err := NewKeyring([]StoredKey{oldest, cur, old}, maxTTL)
	if err != nil {
		t.Fatal(err)
	}
	if kid, alg, ok := ring.Current(); !ok || kid != cur.KID || alg != AlgEdDSA {
		t.Fatalf("Current = %q %q %v, want %q", kid, alg, ok, cur.KID)
	}

	tests := []struct {
		name string
		at   time.Time
		want []string
	}{
		{"all within their windows", t0.Add(2 * time.Hour), []string{cur.KID, old.KID, oldest.KID}},
		{"oldest at its last instant", t0.Add(time.Hour + window - time.Nanosecond), []string{cur.KID, old.KID, oldest.KID}},
		{"oldest dropped", t0.Add(time.Hour + window), []string{cur.KID, old.KID}},
		{"old dropped, current stays forever", t0.Add(48*time.Hour + window + 365*24*time.Hour), []string{cur.KID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ring.VerificationKIDs(tc.at)); diff != "" {
				t.Errorf("VerificationKIDs (-want +got):\n%s", diff)
			}
			var expired []string
			for _, k := range []StoredKey{cur, old, oldest} {
				if !slices.Contains(tc.want, k.KID) {
					expired = append(expired, k.KID)
				}
			}
			if diff := cmp.Diff(expired, ring.ExpiredKIDs(tc.at)); diff != "" {
				t.Errorf("ExpiredKIDs (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("only retired keys: no signer", func(t *testing.T) {
		r, err := NewKeyring([]StoredKey{oldest, old}, maxTTL)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := r.Current(); ok {
			t.Error("a retired key became the signer")
		}
	})
}

func TestKeysEnsureKey(t *testing.T) {
	ctx := context.Background()
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			store := &fakeKeyStore{}
			clock := newFakeClock()
			keys, err := NewKeys(store, KeysConfig{Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, ok := keys.Keyring().Current(); ok {
				t.Fatal("a fresh Keys has a signer before EnsureKey")
			}
			if err := keys.EnsureKey(ctx, alg); err != nil {
				t.Fatal(err)
			}
			kid, gotAlg, ok := keys.Keyring().Current()
			if !ok || gotAlg != alg {
				t.Fatalf("Current = %q %q %v, want a %s key", kid, gotAlg, ok, alg)
			}
			if err := keys.EnsureKey(ctx, alg); err != nil {
				t.Fatal(err)
			}
			if store.count() != 1 {
				t.Errorf("store has %d keys after a second EnsureKey, want 1", store.count())
			}
			if k, _ := store.ListKeys(ctx); !k[0].CreatedAt.Equal(clock.Now()) {
				t.Errorf("CreatedAt = %v, want the injected clock's %v", k[0].CreatedAt, clock.Now())
			}
		})
	}
}

func TestKeysRotationKeepsOldKeysUntilTheirTokensExpire(t *testing.T) {
	ctx := context.Background()
	const maxTTL = 2 * time.Hour
	e := newTestEnv(t, AlgEdDSA, withMaxTTL(maxTTL))
	oldKID, _, _ := e.keys.Keyring().Current()
	oldTok, _, err := e.issuer.Issue(e.agent, maxTTL) // lives as long as possible
	if err != nil {
		t.Fatal(err)
	}

	e.clock.Advance(time.Minute)
	newKID, err := e.keys.Rotate(ctx, AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	retiredAt := e.clock.Now()
	if cur, alg, _ := e.keys.Keyring().Current(); cur != newKID || alg != AlgES256 {
		t.Fatalf("after Rotate current = %q/%s, want %q/ES256", cur, alg, newKID)
	}
	newTok, _ := e.issue(t)

	jwksKIDs := func() []string {
		t.Helper()
		b, err := e.keys.JWKS()
		if err != nil {
			t.Fatal(err)
		}
		set, err := jwk.Parse(b)
		if err != nil {
			t.Fatalf("JWKS does not parse: %v", err)
		}
		var kids []string
		for i := range set.Len() {
			k, _ := set.Key(i)
			kids = append(kids, k.KeyID())
		}
		return kids
	}
	verify := func(tok string) error {
		_, err := e.verifier.Verify(ctx, tok)
		return err
	}

	if diff := cmp.Diff([]string{newKID, oldKID}, jwksKIDs()); diff != "" {
		t.Errorf("JWKS after rotation (-want +got):\n%s", diff)
	}
	if err := verify(oldTok); err != nil {
		t.Errorf("token of the retired key: %v", err)
	}
	if err := verify(newTok); err != nil {
		t.Errorf("token of the new key: %v", err)
	}

	// The retired key's longest-lived token verifies to its last second.
	oldClaims, err := e.verifier.Verify(ctx, oldTok)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(oldClaims.Claims.ExpiresAt.Add(Leeway - time.Second).Sub(e.clock.Now()))
	if err := verify(oldTok); err != nil {
		t.Errorf("retired key's token at its expiry: %v", err)
	}

	// Just before the old key's window closes it is still published.
	e.clock.Advance(retiredAt.Add(maxTTL + Leeway + RetiredKeyGrace - time.Second).Sub(e.clock.Now()))
	if diff := cmp.Diff([]string{newKID, oldKID}, jwksKIDs()); diff != "" {
		t.Errorf("JWKS at the end of the window (-want +got):\n%s", diff)
	}
	e.clock.Advance(time.Second)
	if diff := cmp.Diff([]string{newKID}, jwksKIDs()); diff != "" {
		t.Errorf("JWKS after the window (-want +got):\n%s", diff)
	}
	// Its token is refused for its key (it has also expired by now).
	if err := verify(oldTok); !errors.Is(err, ErrTokenKID) {
		t.Errorf("old token after the window: %v, want ErrTokenKID", err)
	}

	pruned, err := e.keys.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{oldKID}, pruned); diff != "" {
		t.Errorf("Prune (-want +got):\n%s", diff)
	}
	if e.store.count() != 1 {
		t.Errorf("store holds %d keys after Prune, want 1", e.store.count())
	}
}

func TestKeysReloadPicksUpAnotherReplicasRotation(t *testing.T) {
	ctx := context.Background()
	a := newTestEnv(t, AlgEdDSA)
	// Replica b shares a's store and agents but has its own Keys.
	bKeys, err := NewKeys(a.store, KeysConfig{Now: a.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := bKeys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	bVerifier, err := NewVerifier(VerifierConfig{Keys: bKeys, Agents: a.agents, Now: a.clock.Now})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := a.keys.Rotate(ctx, AlgEdDSA); err != nil {
		t.Fatal(err)
	}
	tok, _ := a.issue(t)
	if _, err := bVerifier.Verify(ctx, tok); !errors.Is(err, ErrTokenKID) {
		t.Fatalf("before Reload b verified a's new key: %v", err)
	}
	if err := bKeys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bVerifier.Verify(ctx, tok); err != nil {
		t.Fatalf("after Reload: %v", err)
	}
	aKID, _, _ := a.keys.Keyring().Current()
	if bKID, _, _ := bKeys.Keyring().Current(); bKID != aKID {
		t.Errorf("b signs with %q, a with %q", bKID, aKID)
	}
}

func TestKeysReloadKeepsKeyringOnError(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t, AlgEdDSA)
	tok, _ := e.issue(t)
	before := e.keys.Keyring()

	e.store.mu.Lock()
	e.store.keys = append(e.store.keys, StoredKey{KID: "corrupt", Alg: AlgEdDSA, PrivateDER: []byte{1, 2, 3}})
	e.store.mu.Unlock()
	if err := e.keys.Reload(ctx); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Reload with a corrupt key: %v, want ErrInvalidKey", err)
	}
	e.store.listErr = errors.New("database is down")
	if err := e.keys.Reload(ctx); err == nil {
		t.Fatal("Reload hid a store error")
	}
	if e.keys.Keyring() != before {
		t.Fatal("a failed Reload replaced the keyring")
	}
	if _, err := e.verifier.Verify(ctx, tok); err != nil {
		t.Fatalf("verification after failed reloads: %v", err)
	}
}

func TestSigningKeyVerifyRejectsWrongLengths(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		sk, _ := GenerateKey(alg)
		k, err := parseStoredKey(sk)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := k.sign([]byte("input"))
		if err != nil {
			t.Fatal(err)
		}
		if !k.verify([]byte("input"), sig) {
			t.Fatalf("%s: own signature does not verify", alg)
		}
		for _, bad := range [][]byte{nil, sig[:len(sig)-1], append(slices.Clone(sig), 0), make([]byte, len(sig))} {
			if k.verify([]byte("input"), bad) {
				t.Errorf("%s: a %d-byte bogus signature verified", alg, len(bad))
			}
		}
	}
}
