// Package agentcache keeps recently read agents in memory so the request
// path does not query the store for every delegation-chain member, every
// target host and every peer principal (SPIFFE ID).
//
// Entries live for a short TTL (default one second) and are dropped at once by
// Invalidate when this replica changes an agent; the TTL bounds how long a
// change made on another replica goes unseen (revocation takes effect on every
// replica within a second: docs/storage.md). Misses are cached too — most hosts
// a proxy asks about belong to no agent — under the same TTL.
package agentcache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/meshguard/meshguard/identity"
)

// Source is where agents come from: the store.
type Source interface {
	GetAgent(ctx context.Context, id string) (identity.Agent, error)
	AgentByHost(ctx context.Context, host string) (identity.Agent, error)
	AgentBySPIFFEID(ctx context.Context, id string) (identity.Agent, error)
}

// Defaults.
const (
	DefaultTTL        = time.Second
	DefaultMaxEntries = 100_000
)

// Cache is a read-through cache over a Source. Safe for concurrent use.
type Cache struct {
	src Source
	ttl time.Duration
	max int
	now func() time.Time

	mu     sync.Mutex
	byID   map[string]entry
	byHost map[string]entry
	bySVID map[string]entry // by SPIFFE ID
	gen    uint64           // bumped by every invalidation; see put
}

type entry struct {
	agent   identity.Agent
	missing bool // the source said ErrNotFound
	expires time.Time
}

// New wraps src. ttl ≤ 0 means DefaultTTL; max ≤ 0 means DefaultMaxEntries;
// now may be nil.
func New(src Source, ttl time.Duration, max int, now func() time.Time) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if max <= 0 {
		max = DefaultMaxEntries
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{src: src, ttl: ttl, max: max, now: now, byID: map[string]entry{}, byHost: map[string]entry{}, bySVID: map[string]entry{}}
}

// GetAgent returns the agent with id, or an error wrapping
// identity.ErrNotFound.
func (c *Cache) GetAgent(ctx context.Context, id string) (identity.Agent, error) {
	return c.get(ctx, c.byID, id, c.src.GetAgent)
}

// AgentByHost returns the agent reached under host, or an error wrapping
// identity.ErrNotFound.
func (c *Cache) AgentByHost(ctx context.Context, host string) (identity.Agent, error) {
	return c.get(ctx, c.byHost, host, c.src.AgentByHost)
}

// AgentBySPIFFEID returns the agent bound to the SPIFFE ID id, or an error
// wrapping identity.ErrNotFound.
func (c *Cache) AgentBySPIFFEID(ctx context.Context, id string) (identity.Agent, error) {
	return c.get(ctx, c.bySVID, id, c.src.AgentBySPIFFEID)
}

func (c *Cache) get(ctx context.Context, m map[string]entry, key string, load func(context.Context, string) (identity.Agent, error)) (identity.Agent, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := m[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		if e.missing {
			return identity.Agent{}, identity.ErrNotFound
		}
		return e.agent, nil
	}
	a, err := load(ctx, key)
	missing := errors.Is(err, identity.ErrNotFound)
	if err != nil && !missing {
		return identity.Agent{}, err // infrastructure failure: not cached
	}
	c.mu.Lock()
	// A load that raced an invalidation may hold the old agent: skip it.
	if c.gen == gen {
		if len(m) >= c.max {
			c.sweep(now)
		}
		if len(m) < c.max {
			m[key] = entry{agent: a, missing: missing, expires: now.Add(c.ttl)}
		}
	}
	c.mu.Unlock()
	if missing {
		return identity.Agent{}, err
	}
	return a, nil
}

// sweep drops expired entries. Called with c.mu held.
func (c *Cache) sweep(now time.Time) {
	for _, m := range []map[string]entry{c.byID, c.byHost, c.bySVID} {
		for k, e := range m {
			if !now.Before(e.expires) {
				delete(m, k)
			}
		}
	}
}

// Invalidate forgets everything cached. Call it after creating, updating or
// revoking an agent: host and SPIFFE ID ownership may have moved, so
// dropping only one id would not be enough, and changes are rare.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	c.gen++
	clear(c.byID)
	clear(c.byHost)
	clear(c.bySVID)
	c.mu.Unlock()
}
