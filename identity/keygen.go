package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// DefaultAlg is the algorithm of a key generated without naming one.
const DefaultAlg = AlgEdDSA

// SupportedAlgs lists the asymmetric algorithms MeshGuard signs with.
func SupportedAlgs() []string { return []string{AlgEdDSA, AlgES256} }

var (
	// ErrUnsupportedAlg: an algorithm MeshGuard does not sign with.
	ErrUnsupportedAlg = errors.New("unsupported signing algorithm")
	// ErrInvalidKey: a stored key cannot be used (bad DER, wrong key type
	// for its alg, missing kid).
	ErrInvalidKey = errors.New("invalid signing key")
)

// b64 is the JWS base64url alphabet without padding. Strict so that a
// segment has exactly one accepted spelling: otherwise the low bits of the
// last character could be flipped to make a second, distinct token string
// with the same meaning (harmless for the signature, but it defeats
// token-string based caching and de-duplication).
var b64 = base64.RawURLEncoding.Strict()

// GenerateKey makes a new signing key for alg ("" means DefaultAlg). Its kid
// is the RFC 7638 SHA-256 thumbprint of the public key, base64url-encoded, so
// a kid names exactly one key on every replica without coordination.
// CreatedAt is left zero: the caller stamps it with its own clock (Keys does).
func GenerateKey(alg string) (StoredKey, error) {
	var priv crypto.Signer
	switch alg {
	case "", AlgEdDSA:
		alg = AlgEdDSA
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return StoredKey{}, fmt.Errorf("generating Ed25519 key: %w", err)
		}
		priv = k
	case AlgES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return StoredKey{}, fmt.Errorf("generating P-256 key: %w", err)
		}
		priv = k
	default:
		return StoredKey{}, fmt.Errorf("%w %q (expected %s or %s)", ErrUnsupportedAlg, alg, AlgEdDSA, AlgES256)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return StoredKey{}, fmt.Errorf("encoding %s key as PKCS#8: %w", alg, err)
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return StoredKey{}, err
	}
	return StoredKey{KID: kid, Alg: alg, PrivateDER: der}, nil
}

// thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url) of pub.
func thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return "", fmt.Errorf("public key as JWK: %w", err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("JWK thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// maxKIDLen bounds a stored kid; a thumbprint is 43 characters.
const maxKIDLen = 128

// signingKey is a StoredKey parsed once, with everything the hot paths need
// precomputed: the encoded JWS header for signing and the public JWK for the
// JWKS document.
type signingKey struct {
	kid   string
	alg   string
	edKey ed25519.PrivateKey // set for EdDSA
	ecKey *ecdsa.PrivateKey  // set for ES256
	edPub ed25519.PublicKey
	ecPub *ecdsa.PublicKey
	jwk   jwk.Key // public key with kid, alg and use
	// header and delegHeader are the base64url protected headers of the
	// agent and delegation tokens this key signs; fixed, so signing does no
	// JSON work for them.
	header, delegHeader string

	createdAt time.Time
	retiredAt time.Time // zero while unretired
	// verifyUntil is when a retired key stops verifying; zero for an
	// unretired key.
	verifyUntil time.Time
}

// parseStoredKey checks that k's DER holds a key of k.Alg's type and
// prepares it for use.
func parseStoredKey(k StoredKey) (*signingKey, error) {
	if k.KID == "" || len(k.KID) > maxKIDLen {
		return nil, fmt.Errorf("%w: kid must be 1 to %d characters", ErrInvalidKey, maxKIDLen)
	}
	raw, err := x509.ParsePKCS8PrivateKey(k.PrivateDER)
	if err != nil {
		return nil, fmt.Errorf("%w: kid %q: parsing PKCS#8: %w", ErrInvalidKey, k.KID, err)
	}
	sk := &signingKey{kid: k.KID, alg: k.Alg, createdAt: k.CreatedAt, retiredAt: k.RetiredAt}
	var pub crypto.PublicKey
	switch k.Alg {
	case AlgEdDSA:
		priv, ok := raw.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: kid %q: alg %s needs an Ed25519 key, found %T", ErrInvalidKey, k.KID, k.Alg, raw)
		}
		sk.edKey, sk.edPub = priv, priv.Public().(ed25519.PublicKey)
		pub = sk.edPub
	case AlgES256:
		priv, ok := raw.(*ecdsa.PrivateKey)
		if !ok || priv.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: kid %q: alg %s needs a P-256 ECDSA key, found %T", ErrInvalidKey, k.KID, k.Alg, raw)
		}
		sk.ecKey, sk.ecPub = priv, &priv.PublicKey
		pub = sk.ecPub
	default:
		return nil, fmt.Errorf("%w: kid %q: %w %q", ErrInvalidKey, k.KID, ErrUnsupportedAlg, k.Alg)
	}

	pk, err := jwk.FromRaw(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: kid %q: public key as JWK: %w", ErrInvalidKey, k.KID, err)
	}
	for name, v := range map[string]any{
		jwk.KeyIDKey:     k.KID,
		jwk.AlgorithmKey: jwa.SignatureAlgorithm(k.Alg),
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := pk.Set(name, v); err != nil {
			return nil, fmt.Errorf("%w: kid %q: setting JWK %s: %w", ErrInvalidKey, k.KID, name, err)
		}
	}
	sk.jwk = pk

	for _, h := range []struct {
		dst *string
		typ string
	}{{&sk.header, typJWT}, {&sk.delegHeader, typDelegation}} {
		hdr, err := json.Marshal(struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
			Typ string `json:"typ"`
		}{k.Alg, k.KID, h.typ})
		if err != nil {
			return nil, fmt.Errorf("%w: kid %q: encoding header: %w", ErrInvalidKey, k.KID, err)
		}
		*h.dst = b64.EncodeToString(hdr)
	}
	return sk, nil
}

// es256SigLen is the JWS ES256 signature size: R and S, 32 bytes each
// (RFC 7518 §3.4), not ASN.1.
const es256SigLen = 64

// sign returns the JWS signature of the signing input.
func (k *signingKey) sign(input []byte) ([]byte, error) {
	switch {
	case k.edKey != nil:
		return ed25519.Sign(k.edKey, input), nil
	case k.ecKey != nil:
		h := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, k.ecKey, h[:])
		if err != nil {
			return nil, fmt.Errorf("ES256 signing with kid %q: %w", k.kid, err)
		}
		sig := make([]byte, es256SigLen)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	}
	return nil, fmt.Errorf("%w: kid %q has no private key", ErrInvalidKey, k.kid)
}

// verify reports whether sig is k's signature of input. The algorithm is
// k's own: the caller has already checked the token's alg equals k.alg.
func (k *signingKey) verify(input, sig []byte) bool {
	switch {
	case k.edPub != nil:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.edPub, input, sig)
	case k.ecPub != nil:
		if len(sig) != es256SigLen {
			return false
		}
		h := sha256.Sum256(input)
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		// ecdsa.Verify rejects r or s outside [1, N-1].
		return ecdsa.Verify(k.ecPub, h[:], r, s)
	}
	return false
}
