package identity

import (
	"context"
	"time"
)

// Algorithm names, as they appear in a JWS "alg" header.
const (
	AlgEdDSA = "EdDSA" // Ed25519, the default
	AlgES256 = "ES256" // ECDSA P-256 with SHA-256
	AlgHS256 = "HS256" // only with JWT_SECRET, for compatibility
)

// StoredKey is a signing key as the store keeps it. The private key is
// PKCS#8 DER; the public key can be derived from it, so it is not stored.
type StoredKey struct {
	KID        string    // key id, the JWS "kid" header
	Alg        string    // AlgEdDSA or AlgES256
	PrivateDER []byte    // PKCS#8
	CreatedAt  time.Time // when generated
	// RetiredAt is when a newer key became current; zero while this key is
	// current. A retired key no longer signs but still verifies until
	// RetiredAt plus the longest token lifetime has passed.
	RetiredAt time.Time
}

// KeyStore persists signing keys so every replica signs and verifies alike.
type KeyStore interface {
	ListKeys(ctx context.Context) ([]StoredKey, error)
	// RotateKey stores next as the current key and marks every other
	// unretired key retired at next.CreatedAt, atomically.
	RotateKey(ctx context.Context, next StoredKey) error
	DeleteKey(ctx context.Context, kid string) error
}
