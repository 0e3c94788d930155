package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxJWKSKeys bounds the keys a JWKS given to NewPublicKeyring may hold: a
// keyring publishes its current key and the retired ones still verifying,
// a handful at most.
const MaxJWKSKeys = 32

// jwkPublic is one public JWK as Keyring.JWKS writes it. Every field is a
// string (use through a pointer, so "use": "" is not taken for no use);
// private members (d) are refused, so a private key pasted into a
// configuration by mistake is an error, not a key silently used.
type jwkPublic struct {
	Kty string  `json:"kty"`
	Crv string  `json:"crv"`
	X   string  `json:"x"`
	Y   string  `json:"y"`
	Kid string  `json:"kid"`
	Alg string  `json:"alg"`
	Use *string `json:"use"` // absent, or "sig"
}

// jwkNames are the JWKS members NewPublicKeyring reads.
var jwkNames = []string{"keys", "kty", "crv", "x", "y", "kid", "alg", "use"}

// NewPublicKeyring builds a verify-only keyring from a JWKS document
// ({"keys":[...]}) of Ed25519 (kty OKP) and P-256 (kty EC) public keys,
// each with its kid and alg: what the wasm filter receives in its
// configuration. It has no current key, so nothing can sign with it, and
// every key verifies until the JWKS is replaced (whoever sends the JWKS
// drops retired keys once their window closes). maxTokenTTL is as for
// NewKeyring.
func NewPublicKeyring(jwks []byte, maxTokenTTL time.Duration) (*Keyring, error) {
	if maxTokenTTL == 0 {
		maxTokenTTL = DefaultMaxTTL
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(jwks))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: JWKS: expected {\"keys\":[...]}: %w", ErrInvalidKey, err)
	}
	// Decode reads one value: a second one after it ({...}{"keys":[...]})
	// is a document another reader may take instead.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: JWKS: data after the document", ErrInvalidKey)
	}
	// One reading only: a member twice, or "KID" for kid, would be read
	// one way here and another by the JWKS's other consumers.
	if err := checkMembers(jwks, jwkNames); err != nil {
		return nil, fmt.Errorf("%w: JWKS: %w", ErrInvalidKey, err)
	}
	if len(doc.Keys) > MaxJWKSKeys {
		return nil, fmt.Errorf("%w: JWKS: %d keys, at most %d", ErrInvalidKey, len(doc.Keys), MaxJWKSKeys)
	}
	r := &Keyring{byKID: make(map[string]*signingKey, len(doc.Keys)), maxTTL: maxTokenTTL}
	for i, raw := range doc.Keys {
		sk, err := parsePublicJWK(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: JWKS keys[%d]: %w", ErrInvalidKey, i, err)
		}
		if _, dup := r.byKID[sk.kid]; dup {
			return nil, fmt.Errorf("%w: JWKS keys[%d]: kid %q appears twice", ErrInvalidKey, i, sk.kid)
		}
		r.byKID[sk.kid] = sk
		r.ordered = append(r.ordered, sk)
	}
	return r, nil
}

func parsePublicJWK(raw json.RawMessage) (*signingKey, error) {
	var k jwkPublic
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil {
		return nil, fmt.Errorf("expected a public JWK with kty, crv, x, (y,) kid, alg and use: %w", err)
	}
	switch {
	case k.Kid == "" || len(k.Kid) > maxKIDLen:
		return nil, fmt.Errorf("kid must be 1 to %d characters", maxKIDLen)
	case k.Use != nil && *k.Use != "sig":
		return nil, fmt.Errorf("kid %q: use %q: expected sig", k.Kid, *k.Use)
	}
	x, err := b64.DecodeString(k.X)
	if err != nil {
		return nil, fmt.Errorf("kid %q: x is not base64url", k.Kid)
	}
	sk := &signingKey{kid: k.Kid, alg: k.Alg}
	switch {
	case k.Alg == AlgEdDSA && k.Kty == "OKP" && k.Crv == "Ed25519" && k.Y == "":
		if len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("kid %q: an Ed25519 x is %d bytes, not %d", k.Kid, ed25519.PublicKeySize, len(x))
		}
		sk.edPub = ed25519.PublicKey(x)
	case k.Alg == AlgES256 && k.Kty == "EC" && k.Crv == "P-256":
		y, err := b64.DecodeString(k.Y)
		if err != nil || len(x) != 32 || len(y) != 32 {
			return nil, fmt.Errorf("kid %q: a P-256 key needs 32-byte base64url x and y", k.Kid)
		}
		// Refuses points off the curve: verifying against one is undefined.
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("kid %q: the point is not on P-256", k.Kid)
		}
		sk.ecPub = pub
	default:
		return nil, fmt.Errorf("kid %q: kty %q crv %q alg %q: expected OKP Ed25519 EdDSA or EC P-256 ES256", k.Kid, k.Kty, k.Crv, k.Alg)
	}
	return sk, nil
}
