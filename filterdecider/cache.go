package filterdecider

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
)

// decisionCache holds the allows the engine gave, so a repeated request
// skips the engine (docs/wasm-filter.md "The decision cache"): the same
// agent token, delegation token, method, host, path and query, route
// action and tier floor, source address, and every header the request
// carries but its trace context and request id (Reissue reads the trace
// context again), which are in the key too when a policy reads one
// (keyTrace). Every header, not only those the policies read: the engine
// reads some itself (a method override, for one), and a header it starts
// reading must not be left out of the key. A hit is reissued by the
// engine (engine.Reissue): a new decision id, time and trace, and its own
// audit record.
//
// It serves only what is a pure function of its key:
//   - one configuration: it belongs to the Decider, so every
//     reconfiguration (a revocation, a policy, agent or key change) starts
//     with an empty one;
//   - allows only, and only those that read no clock nor counter: no
//     policy with a time condition (the cache is off for the whole set),
//     nothing deferred to MeshGuard (rate limits, approvals, delegation
//     tokens to mint, HS256 never reach it), no shadow answer, no body;
//   - an entry never outlives either token's expiry, nor the verified-token
//     cache's maximum age (identity.DefaultCacheMaxAge).
//
// It is bounded in bytes as well as entries (maxEntryBytes, maxBytes): an
// authenticated agent choosing its paths and the values its policies read
// must not make it hold more than a few MB.
//
// Its key is SipHash-128 under a random 128-bit key of the Decider's, so
// no credential is held in memory, and one request cannot be made to
// collide with another without that key (docs/security.md).
type decisionCache struct {
	k0, k1 uint64
	max    int
	maxAge time.Duration
	// keyTrace keeps the trace-only headers in the key: a policy reads
	// one of them (header.x-request-id…), so they decide.
	keyTrace bool
	// maxEntry and maxBytes bound the bytes the entries keep
	// (engine.Decision.KeptBytes): one entry's, and all of them together.
	maxEntry, maxBytes int
	mu                 sync.Mutex
	entries            map[[2]uint64]*cached
	bytes              int // the entries' KeptBytes, summed
}

// The decision cache's byte bounds, on what engine.Decision.KeptBytes
// counts: the strings an entry keeps (its path, counted for the action,
// the resource and the record; the request values its policies read; ids
// and names). Measured by TestDecisionCacheMemory: an ordinary allow
// (a path of a few dozen bytes) counts ≈ 470 bytes; the largest an agent
// can have the engine allow (a path of engine.MaxPathLen, 8 KB of values
// read) ≈ 33 KB, and held 27 KB of heap an entry: 265 MB for 10,000 of
// them, in each VM. An entry over maxEntryBytes (a path over ≈ 1.2 KB, or
// as many bytes of values read) is not cached: the engine decides it each
// time, as a miss. maxBytes keeps 10,000 ordinary entries (up to ≈ 840
// bytes each) and caps the rest: ≈ 2,200 entries near maxEntryBytes,
// 9 MB of heap. The structs of an entry (≈ 1.5 KB: the Decision, its
// record) are bounded by the entry count, as before: 10,000 ordinary
// entries hold 19 MB.
const (
	maxEntryBytes = 4 << 10
	maxBytes      = 8 << 20
)

// cached is an entry: written once by put, only read after (get hands
// out a pointer to d, which Reissue copies).
type cached struct {
	d    engine.Decision
	exp  int64 // Unix nanoseconds
	size int   // d.KeptBytes()
}

// newDecisionCache returns the cache for set, or nil (off) when the set's
// decisions read the clock.
func newDecisionCache(timed bool, max int) (*decisionCache, error) {
	if timed || max <= 0 {
		return nil, nil
	}
	var key [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	c := &decisionCache{k0: binary.LittleEndian.Uint64(key[:8]), k1: binary.LittleEndian.Uint64(key[8:]),
		max: max, maxEntry: maxEntryBytes, maxBytes: maxBytes, maxAge: identity.DefaultCacheMaxAge, entries: map[[2]uint64]*cached{}}
	return c, nil
}

// readsTrace reports whether a request key of the set (policy.Set's
// RequestKeys) reads a trace-only header, as edge.SameName reads it ('_'
// as '-').
func readsTrace(keys []string) bool {
	for _, k := range keys {
		if name, ok := strings.CutPrefix(k, policy.HeaderKeyPrefix); ok && traceOnly(strings.ReplaceAll(strings.ToLower(name), "_", "-")) {
			return true
		}
	}
	return false
}

// cacheable reports whether r may be served from the cache at all: a
// request with a token, decided at its headers, without a peer principal,
// its headers as the filter holds them.
func cacheable(r *engine.Request) bool {
	_, pairs := r.Headers.(edge.PairHeaders)
	return pairs && r.Token != "" && r.RouteProtocol == "" && r.Body == nil && r.BodyError == nil && r.Principal == ""
}

// traceOnly are the headers left out of the key: trace context, which
// decides nothing (Reissue takes the trace from the request again), and
// per-request ids no decision reads. Lower-case, as Envoy gives them.
func traceOnly(name string) bool {
	switch name {
	case "traceparent", "tracestate", "x-request-id", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags":
		return true
	}
	return false
}

// key is r's key: every field the decision reads, each length-prefixed so
// no two requests share an encoding. A header whose value is exactly one
// of the fields already in the key (the token's "Bearer …", :method,
// :authority, :path: the filter takes those fields from these headers) is
// written as a word naming that field instead of its bytes again: the
// token is most of a request's bytes, and it was hashed twice. A word
// with the top bit set is never a length, so the encoding stays
// unambiguous.
func (c *decisionCache) key(r *engine.Request) [2]uint64 {
	s := newSip(c.k0, c.k1)
	for _, f := range [...]string{r.Token, r.Delegation, string(r.Source), r.Method, r.Host, r.Path,
		r.RouteAction, r.RouteService, r.MinTier.String(), r.SourceAddress, r.Proxy} {
		s.field(f)
	}
	hs, _ := r.Headers.(edge.PairHeaders)
	s.writeLen(len(hs))
	for _, kv := range hs {
		if !c.keyTrace && traceOnly(kv[0]) {
			continue
		}
		s.field(kv[0])
		if f := sameAsField(r, kv); f != 0 {
			s.writeLen(f)
		} else {
			s.field(kv[1])
		}
	}
	return s.sum()
}

// The words written for a header that repeats a field of the key.
const (
	repeatsToken = math.MinInt64 + iota + 1
	repeatsMethod
	repeatsHost
	repeatsPath
)

// sameAsField is the word for header kv when its value is exactly a field
// already in r's key, 0 when it is not.
func sameAsField(r *engine.Request, kv [2]string) int {
	const bearer = "Bearer "
	switch v := kv[1]; kv[0] {
	case "authorization":
		if r.Token != "" && len(v) == len(bearer)+len(r.Token) && v[:len(bearer)] == bearer && v[len(bearer):] == r.Token {
			return repeatsToken
		}
	case ":method":
		if v == r.Method {
			return repeatsMethod
		}
	case ":authority":
		if v == r.Host {
			return repeatsHost
		}
	case ":path":
		if v == r.Path {
			return repeatsPath
		}
	}
	return 0
}

// get is the decision cached under k, nil when there is none. It points
// into the cache, not at a copy (a Decision is 632 bytes, and copying it
// out cost ≈ 5 µs a request in wasm): the caller only reads it, and no
// entry is written once stored (put replaces an entry, never edits it).
func (c *decisionCache) get(k [2]uint64, now time.Time) *engine.Decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil
	}
	if now.UnixNano() >= e.exp {
		c.drop(k, e)
		return nil
	}
	return &e.d
}

// put keeps d until exp, unless it keeps more than maxEntry bytes. While
// the cache is full, in entries or in bytes, an entry goes (Go's map order
// is random): the bounds hold, whatever the traffic. It reports whether d
// was kept.
func (c *decisionCache) put(k [2]uint64, d engine.Decision, exp time.Time) bool {
	size := d.KeptBytes()
	if size > c.maxEntry {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		c.drop(k, e)
	}
	for len(c.entries) > 0 && (len(c.entries) >= c.max || c.bytes+size > c.maxBytes) {
		for old, e := range c.entries {
			c.drop(old, e)
			break
		}
	}
	c.entries[k] = &cached{d: d, exp: exp.UnixNano(), size: size}
	c.bytes += size
	return true
}

// drop removes e, the entry under k; c.mu is held.
func (c *decisionCache) drop(k [2]uint64, e *cached) {
	delete(c.entries, k)
	c.bytes -= e.size
}

func (c *decisionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// held is the entries' KeptBytes, summed.
func (c *decisionCache) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// expiry is when a decision made at now for r must go: the earlier of its
// tokens' expiries and now plus the maximum age. ok is false when a token
// cannot be read again (the decision is then not cached).
func (d *Decider) expiry(ctx context.Context, r *engine.Request, now time.Time) (time.Time, bool) {
	exp := now.Add(d.cache.maxAge)
	v, err := d.tokens.Verify(ctx, r.Token)
	if err != nil {
		return time.Time{}, false
	}
	if v.Claims.ExpiresAt.Before(exp) {
		exp = v.Claims.ExpiresAt
	}
	if r.Delegation != "" {
		g, err := d.tokens.VerifyDelegation(r.Delegation)
		if err != nil {
			return time.Time{}, false
		}
		if g.ExpiresAt.Before(exp) {
			exp = g.ExpiresAt
		}
	}
	return exp, true
}

// cacheableDecision: an allow the engine gave alone, with nothing that
// changes from one request to the next beyond its id, time and trace.
func cacheableDecision(d *engine.Decision) bool {
	return d.Effect == "allow" && d.Allowed && d.Status == 200 && d.Shadow == nil && d.Call == nil &&
		d.Delegation == "" && d.TargetAgent == "" && d.ApprovalID == "" && d.RetryAfter == 0
}

// timed reports whether any rule of docs has a time condition.
func timed(ps []*policy.Policy) bool {
	for _, p := range ps {
		for i := range p.Rules {
			if c := p.Rules[i].Conditions; c != nil && (c.Time != nil || c.RateLimit != nil) {
				return true
			}
		}
	}
	return false
}
