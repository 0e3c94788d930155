package identity

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Token lifetime bounds.
const (
	// DefaultTTL is the lifetime of a token issued without one (docs/identity.md).
	DefaultTTL = 24 * time.Hour
	// DefaultMaxTTL is the longest lifetime a token may have. 30 days lets
	// long-running agents go a month between credentials while keeping the
	// window small in which a retired key must stay published (a key
	// verifies for MaxTTL after its retirement). Revocation does not depend
	// on it: a revoked agent's or jti's tokens are refused at once.
	DefaultMaxTTL = 30 * 24 * time.Hour
	// Leeway is the clock skew allowed on exp, nbf and iat (docs/identity.md).
	Leeway = 30 * time.Second
	// RetiredKeyGrace is added to a retired key's verification window. A
	// replica keeps signing with a key until its next Reload notices the
	// rotation, so its last tokens expire up to that long after RetiredAt.
	// Replicas must therefore Reload more often than this.
	RetiredKeyGrace = 5 * time.Minute
)

// ErrNoSigningKey: the keyring has no current (unretired) key.
var ErrNoSigningKey = errors.New("no current signing key")

// Keyring is an immutable set of parsed keys: the current signer and the
// keys that still verify. A retired key verifies until RetiredAt + max token
// TTL + Leeway + RetiredKeyGrace; after that it is as good as unknown, with
// no reload needed, because validity is judged against the caller's clock.
type Keyring struct {
	current *signingKey
	byKID   map[string]*signingKey
	ordered []*signingKey // current first, then newest first
	maxTTL  time.Duration
}

// NewKeyring parses keys. The current signer is the newest unretired key
// (several unretired keys only happen if a store skipped RotateKey's
// retirement; the older ones then still verify, without a deadline).
// maxTokenTTL is the longest token lifetime (DefaultMaxTTL if zero): it
// bounds what Issue accepts and how long retired keys keep verifying, so the
// two cannot disagree.
func NewKeyring(keys []StoredKey, maxTokenTTL time.Duration) (*Keyring, error) {
	if maxTokenTTL == 0 {
		maxTokenTTL = DefaultMaxTTL
	}
	if maxTokenTTL < time.Second {
		return nil, fmt.Errorf("max token TTL %s: must be at least 1s", maxTokenTTL)
	}
	r := &Keyring{byKID: make(map[string]*signingKey, len(keys)), maxTTL: maxTokenTTL}
	for _, k := range keys {
		sk, err := parseStoredKey(k)
		if err != nil {
			return nil, err
		}
		if _, dup := r.byKID[sk.kid]; dup {
			return nil, fmt.Errorf("%w: kid %q stored twice", ErrInvalidKey, sk.kid)
		}
		if !sk.retiredAt.IsZero() {
			sk.verifyUntil = sk.retiredAt.Add(maxTokenTTL + Leeway + RetiredKeyGrace)
		}
		r.byKID[sk.kid] = sk
		r.ordered = append(r.ordered, sk)
	}
	slices.SortFunc(r.ordered, func(a, b *signingKey) int {
		// Unretired first, then newest first; kid breaks ties so every
		// replica picks the same current key.
		if ar, br := a.retiredAt.IsZero(), b.retiredAt.IsZero(); ar != br {
			if ar {
				return -1
			}
			return 1
		}
		if c := b.createdAt.Compare(a.createdAt); c != 0 {
			return c
		}
		return cmp.Compare(a.kid, b.kid)
	})
	if len(r.ordered) > 0 && r.ordered[0].retiredAt.IsZero() {
		r.current = r.ordered[0]
	}
	return r, nil
}

// MaxTTL is the longest token lifetime this keyring was built for.
func (r *Keyring) MaxTTL() time.Duration { return r.maxTTL }

// Current returns the kid and alg of the signing key, ok false if none.
func (r *Keyring) Current() (kid, alg string, ok bool) {
	if r.current == nil {
		return "", "", false
	}
	return r.current.kid, r.current.alg, true
}

// lookup returns the key kid if it verifies at now, else nil.
func (r *Keyring) lookup(kid string, now time.Time) *signingKey {
	k := r.byKID[kid]
	if k == nil || (!k.verifyUntil.IsZero() && !now.Before(k.verifyUntil)) {
		return nil
	}
	return k
}

// verifying returns the keys that verify at now, current first.
func (r *Keyring) verifying(now time.Time) []*signingKey {
	out := make([]*signingKey, 0, len(r.ordered))
	for _, k := range r.ordered {
		if r.lookup(k.kid, now) != nil {
			out = append(out, k)
		}
	}
	return out
}

// VerificationKIDs lists the kids that verify at now, current first.
func (r *Keyring) VerificationKIDs(now time.Time) []string {
	var kids []string
	for _, k := range r.verifying(now) {
		kids = append(kids, k.kid)
	}
	return kids
}

// ExpiredKIDs lists retired keys whose verification window has closed at
// now: they can be deleted from the store.
func (r *Keyring) ExpiredKIDs(now time.Time) []string {
	var kids []string
	for _, k := range r.ordered {
		if !k.verifyUntil.IsZero() && !now.Before(k.verifyUntil) {
			kids = append(kids, k.kid)
		}
	}
	return kids
}

// KeyringSource hands out the keyring in force. Keys implements it; a
// static *Keyring does too, which is handy in tests and tools.
type KeyringSource interface {
	Keyring() *Keyring
}

// Keyring returns r itself, so a fixed keyring is a KeyringSource.
func (r *Keyring) Keyring() *Keyring { return r }

// KeysConfig configures Keys.
type KeysConfig struct {
	// MaxTTL is the longest token lifetime (DefaultMaxTTL if zero).
	MaxTTL time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Keys keeps the keyring in step with a KeyStore. Readers get the current
// keyring with one atomic load; Reload, Rotate, EnsureKey and Prune are
// serialised so a slow Reload cannot install a keyring older than one a
// concurrent Rotate just installed.
type Keys struct {
	store  KeyStore
	now    func() time.Time
	maxTTL time.Duration

	mu   sync.Mutex // serialises store reads and writes that replace ring
	ring atomic.Pointer[Keyring]
}

// NewKeys returns a Keys with an empty keyring; call EnsureKey (leader or
// first start) or Reload before issuing.
func NewKeys(store KeyStore, cfg KeysConfig) (*Keys, error) {
	if store == nil {
		return nil, errors.New("identity: NewKeys: nil KeyStore")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	empty, err := NewKeyring(nil, cfg.MaxTTL)
	if err != nil {
		return nil, fmt.Errorf("identity: NewKeys: %w", err)
	}
	k := &Keys{store: store, now: cfg.Now, maxTTL: empty.maxTTL}
	k.ring.Store(empty)
	return k, nil
}

// Keyring returns the keyring in force.
func (k *Keys) Keyring() *Keyring { return k.ring.Load() }

// Reload reads the store and installs its keys, so a replica picks up a
// rotation made elsewhere. On error the previous keyring stays in force: a
// corrupt row must not leave the replica unable to verify anything.
func (k *Keys) Reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked(ctx)
}

func (k *Keys) reloadLocked(ctx context.Context) error {
	stored, err := k.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	ring, err := NewKeyring(stored, k.maxTTL)
	if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	k.ring.Store(ring)
	return nil
}

// EnsureKey loads the keys and, if there is no current key (an empty store
// on first start), generates one with alg. Two replicas starting together
// may both generate one; RotateKey retires the loser, whose tokens still
// verify, so no coordination is needed.
func (k *Keys) EnsureKey(ctx context.Context, alg string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(ctx); err != nil {
		return err
	}
	if _, _, ok := k.ring.Load().Current(); ok {
		return nil
	}
	_, err := k.rotateLocked(ctx, alg)
	return err
}

// Rotate generates a key with alg, makes it current in the store (retiring
// the previous one, which keeps verifying its tokens until they expire) and
// reloads. It returns the new kid.
func (k *Keys) Rotate(ctx context.Context, alg string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rotateLocked(ctx, alg)
}

func (k *Keys) rotateLocked(ctx context.Context, alg string) (string, error) {
	next, err := GenerateKey(alg)
	if err != nil {
		return "", fmt.Errorf("rotating signing key: %w", err)
	}
	next.CreatedAt = k.now().UTC()
	if err := k.store.RotateKey(ctx, next); err != nil {
		return "", fmt.Errorf("rotating signing key: storing %s key: %w", next.Alg, err)
	}
	if err := k.reloadLocked(ctx); err != nil {
		return "", fmt.Errorf("rotating signing key: stored kid %q but %w", next.KID, err)
	}
	return next.KID, nil
}

// Prune deletes retired keys whose verification window has closed, so no
// private key is kept longer than it is useful, and returns their kids (pass
// each to CachedVerifier.InvalidateKey). The keyring already ignores such
// keys, so pruning is housekeeping, not a security step.
func (k *Keys) Prune(ctx context.Context) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	expired := k.ring.Load().ExpiredKIDs(k.now())
	var deleted []string
	for _, kid := range expired {
		if err := k.store.DeleteKey(ctx, kid); err != nil && !errors.Is(err, ErrNotFound) {
			return deleted, fmt.Errorf("pruning signing key %q: %w", kid, err)
		}
		deleted = append(deleted, kid)
	}
	if len(deleted) == 0 {
		return nil, nil
	}
	return deleted, k.reloadLocked(ctx)
}

// JWKS returns the JWKS document of the keys that verify now.
func (k *Keys) JWKS() ([]byte, error) { return k.ring.Load().JWKS(k.now()) }
