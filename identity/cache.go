package identity

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Cache defaults.
const (
	DefaultCacheEntries = 10_000
	// DefaultCacheMaxAge bounds how long a verification is reused even if
	// the token lives longer: a replica that missed an invalidation heals
	// within this time.
	DefaultCacheMaxAge = time.Minute
)

// CacheConfig configures a CachedVerifier.
type CacheConfig struct {
	// MaxEntries bounds the number of cached tokens (DefaultCacheEntries
	// if zero).
	MaxEntries int
	// MaxAge bounds an entry's life (DefaultCacheMaxAge if zero); an
	// entry never outlives its token's exp either.
	MaxAge time.Duration
}

// CachedVerifier puts a cache of successful verifications in front of a
// Verifier, so a token seen before costs a SHA-256 and a map lookup instead
// of a signature check and two store reads. Failures are never cached.
//
// Entries are keyed by the SHA-256 of the token: the cache holds no
// credential, and a heap dump of it yields none.
//
// How changes reach it. A cached entry carries the agent as it was when the
// token was verified, so whoever changes an agent must call InvalidateAgent:
// the admin API after a revoke or update on this replica, and, for changes
// made on other replicas, the store's change feed (PostgreSQL
// LISTEN/NOTIFY or polling updatedAt), which must run at least once a second
// so that a revocation takes effect within 1 s on every replica
// (docs/storage.md).
// A revoked jti is different: every hit asks the Verifier's RevokedTokens
// (an in-memory set, RevokedSet), so a revocation bites from the next
// request on even on a replica whose cache still holds the token;
// InvalidateTokenID only frees the entry. MaxAge is the safety net
// for a missed call, not the mechanism. Key removal is also checked on every
// hit against the live keyring (a Reload that drops a kid stops its cached
// tokens at once); InvalidateKey additionally frees their entries.
//
// Eviction is CLOCK (second-chance), an O(1) amortised approximation of LRU:
// a hit only sets a flag under a read lock, so hits on different or equal
// tokens do not serialise; an insert into a full shard sweeps a hand over
// the slots, taking the first expired or unreferenced one.
type CachedVerifier struct {
	v      *Verifier
	maxAge time.Duration
	tokens tokenCache[Verified]
	grants tokenCache[cachedGrant]
}

// cachedGrant is a verified delegation token and the key that signed it.
type cachedGrant struct {
	grant DelegationGrant
	kid   string
}

// tokenCache maps token hashes to verification results. The agent-token
// and delegation-token caches are two of these.
type tokenCache[V any] struct {
	shards []cacheShard[V]
	mask   uint8
	// gen counts invalidations. A verification that started before an
	// invalidation must not be cached after it (it may have read the agent
	// before the revoke), so put compares gen under the shard lock.
	gen atomic.Uint64
}

// cacheShard is one lock's worth of a cache.
type cacheShard[V any] struct {
	mu    sync.RWMutex
	index map[[sha256.Size]byte]int32
	slots []cacheSlot[V] // fixed length: the shard's capacity
	used  int            // slots[:used] have been handed out at least once
	free  []int32        // invalidated slots below used
	hand  int            // CLOCK hand
	_     [64]byte       // keep neighbouring shards' locks off one cache line
}

type cacheSlot[V any] struct {
	key     [sha256.Size]byte
	expires int64 // unix nanoseconds; the entry is dead from then on
	ref     atomic.Bool
	v       *V // nil when the slot is free; never mutated once set
}

// NewCachedVerifier wraps v. The cache uses v's clock.
func NewCachedVerifier(v *Verifier, cfg CacheConfig) *CachedVerifier {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultCacheEntries
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultCacheMaxAge
	}
	// 16 shards spread lock traffic; a small cache gets one shard so each
	// shard's share (MaxEntries/shards, rounded down, so the bound holds)
	// stays meaningful.
	n := 16
	if cfg.MaxEntries < 256 {
		n = 1
	}
	c := &CachedVerifier{v: v, maxAge: cfg.MaxAge}
	c.tokens.init(n, cfg.MaxEntries/n)
	c.grants.init(n, cfg.MaxEntries/n)
	return c
}

func (tc *tokenCache[V]) init(shards, per int) {
	tc.shards, tc.mask = make([]cacheShard[V], shards), uint8(shards-1)
	for i := range tc.shards {
		tc.shards[i].index = make(map[[sha256.Size]byte]int32, per)
		tc.shards[i].slots = make([]cacheSlot[V], per)
	}
}

// hashToken keys the caches. sha256 only reads its input, so viewing the
// string's bytes in place is safe and saves copying the token per request.
func hashToken(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

func (tc *tokenCache[V]) shard(key *[sha256.Size]byte) *cacheShard[V] {
	return &tc.shards[key[0]&tc.mask]
}

// expiry is when an entry for a token expiring at exp must go.
func (c *CachedVerifier) expiry(exp, now time.Time) int64 {
	if limit := now.Add(c.maxAge); limit.Before(exp) {
		exp = limit
	}
	return exp.UnixNano()
}

// Verify returns the cached result for token if there is a live one, else
// verifies it with the Verifier and caches a success. The result is shared
// with the cache: treat it as read-only. It is a pointer because the result
// is large and this is the hot path.
func (c *CachedVerifier) Verify(ctx context.Context, token string) (*Verified, error) {
	if token == "" || len(token) > MaxTokenSize {
		_, err := c.v.Verify(ctx, token) // rejected without hashing a huge string
		return nil, err
	}
	key := hashToken(token)
	sh := c.tokens.shard(&key)
	now := c.v.now()
	if v := sh.get(&key, now.UnixNano()); v != nil && c.keyLive(v.KID, now) {
		if err := c.v.checkRevoked(ctx, &v.Claims); err != nil {
			return nil, err
		}
		return v, nil
	}
	return c.verifyAndCache(ctx, token, &key, sh, now)
}

// verifyAndCache is Verify's miss path, kept out of Verify so the hit path
// runs in a small stack frame: the full verification's locals are over a
// kilobyte, and the hit path is every request.
func (c *CachedVerifier) verifyAndCache(ctx context.Context, token string, key *[sha256.Size]byte, sh *cacheShard[Verified], now time.Time) (*Verified, error) {
	gen := c.tokens.gen.Load()
	res, err := c.v.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	sh.put(*key, &res, c.expiry(res.Claims.ExpiresAt, now), now.UnixNano(), gen, &c.tokens.gen)
	return &res, nil
}

// VerifyDelegation is Verifier.VerifyDelegation with the same cache: a
// chain's token is presented on every call of the actor, and verifying its
// signature each time would cost more than the rest of the decision.
// Nothing about agents is cached with it (the engine looks every chain
// member up on each request), so only key removal invalidates it; a hit
// still asks the revocation list about the tokens that handed it on.
func (c *CachedVerifier) VerifyDelegation(token string) (DelegationGrant, error) {
	if token == "" || len(token) > MaxTokenSize {
		return c.v.VerifyDelegation(token)
	}
	key := hashToken(token)
	sh := c.grants.shard(&key)
	now := c.v.now()
	if g := sh.get(&key, now.UnixNano()); g != nil && c.keyLive(g.kid, now) {
		if err := c.v.checkGrantRevoked(&g.grant); err != nil {
			return DelegationGrant{}, err
		}
		return g.grant, nil
	}
	gen := c.grants.gen.Load()
	kid, g, err := c.v.verifyDelegation(token, now)
	if err != nil {
		return DelegationGrant{}, err
	}
	if err := c.v.checkGrantRevoked(&g); err != nil {
		return DelegationGrant{}, err
	}
	sh.put(key, &cachedGrant{grant: g, kid: kid}, c.expiry(g.ExpiresAt, now), now.UnixNano(), gen, &c.grants.gen)
	return g, nil
}

// keyLive reports whether the key kid still verifies ("" is HS256, whose
// secret is fixed for the Verifier's life).
func (c *CachedVerifier) keyLive(kid string, now time.Time) bool {
	return kid == "" || c.v.keys.Keyring().lookup(kid, now) != nil
}

// InvalidateAgent drops every entry of agent id. Call it after revoking,
// demoting or otherwise updating the agent.
func (c *CachedVerifier) InvalidateAgent(id string) int {
	return c.tokens.invalidate(func(v *Verified) bool { return v.Claims.Subject == id })
}

// InvalidateKey drops every entry verified by key kid. Call it after
// deleting the key.
func (c *CachedVerifier) InvalidateKey(kid string) int {
	return c.tokens.invalidate(func(v *Verified) bool { return v.KID == kid }) +
		c.grants.invalidate(func(g *cachedGrant) bool { return g.kid == kid })
}

// InvalidateTokenID drops the entry of the token with jti, after revoking it.
func (c *CachedVerifier) InvalidateTokenID(jti string) int {
	return c.tokens.invalidate(func(v *Verified) bool { return v.Claims.ID == jti })
}

// invalidate drops matching entries and returns how many. It scans: O(n) in
// the cache size, but invalidations are rare admin events, and a secondary
// index would cost an allocation on every insert.
func (tc *tokenCache[V]) invalidate(match func(*V) bool) int {
	tc.gen.Add(1) // before the scan, see gen
	dropped := 0
	for i := range tc.shards {
		s := &tc.shards[i]
		s.mu.Lock()
		for j := 0; j < s.used; j++ {
			sl := &s.slots[j]
			if sl.v != nil && match(sl.v) {
				s.release(int32(j))
				dropped++
			}
		}
		s.mu.Unlock()
	}
	return dropped
}

// Purge drops every entry.
func (c *CachedVerifier) Purge() {
	c.tokens.purge()
	c.grants.purge()
}

func (tc *tokenCache[V]) purge() {
	tc.gen.Add(1)
	for i := range tc.shards {
		s := &tc.shards[i]
		s.mu.Lock()
		clear(s.index)
		clear(s.slots[:s.used])
		s.used, s.free, s.hand = 0, s.free[:0], 0
		s.mu.Unlock()
	}
}

// Len returns the number of agent-token entries, live or
// expired-but-not-yet-reused.
func (c *CachedVerifier) Len() int { return c.tokens.len() }

func (tc *tokenCache[V]) len() int {
	n := 0
	for i := range tc.shards {
		s := &tc.shards[i]
		s.mu.RLock()
		n += len(s.index)
		s.mu.RUnlock()
	}
	return n
}

// get returns the live entry for key, marking it recently used.
func (s *cacheShard[V]) get(key *[sha256.Size]byte, now int64) *V {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.index[*key]
	if !ok {
		return nil
	}
	sl := &s.slots[i]
	if now >= sl.expires {
		return nil
	}
	if !sl.ref.Load() { // a read keeps the cache line shared when already set
		sl.ref.Store(true)
	}
	return sl.v
}

// put stores v under key unless an invalidation happened since gen was read.
func (s *cacheShard[V]) put(key [sha256.Size]byte, v *V, expires, now int64, gen uint64, cur *atomic.Uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur.Load() != gen {
		return
	}
	if i, ok := s.index[key]; ok {
		sl := &s.slots[i]
		sl.v, sl.expires = v, expires
		sl.ref.Store(true)
		return
	}
	var i int32
	switch {
	case len(s.free) > 0:
		i = s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
	case s.used < len(s.slots):
		i = int32(s.used)
		s.used++
	default:
		i = s.evict(now)
		delete(s.index, s.slots[i].key)
	}
	sl := &s.slots[i]
	sl.key, sl.v, sl.expires = key, v, expires
	sl.ref.Store(false)
	s.index[key] = i
}

// evict picks a victim in a full shard: the first slot under the hand that
// is expired or was not used since the hand last passed. It ends within two
// sweeps, because the first clears every reference flag.
func (s *cacheShard[V]) evict(now int64) int32 {
	for {
		i := s.hand
		if s.hand++; s.hand == len(s.slots) {
			s.hand = 0
		}
		sl := &s.slots[i]
		if now >= sl.expires || !sl.ref.Load() {
			return int32(i)
		}
		sl.ref.Store(false)
	}
}

// release frees slot i. Called with s.mu held.
func (s *cacheShard[V]) release(i int32) {
	sl := &s.slots[i]
	delete(s.index, sl.key)
	sl.v, sl.expires = nil, 0
	sl.ref.Store(false)
	s.free = append(s.free, i)
}
