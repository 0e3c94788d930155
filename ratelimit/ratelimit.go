// Package ratelimit counts requests per key in sliding windows.
//
// Memory is the in-process limiter for a single replica. Several replicas
// share limits through Shared, which keeps its counts in a CountStore
// (store.Postgres); the engine and the gateway depend only on the Limiter
// interface they define, which both satisfy.
//
// The window is a sliding-window counter: the previous fixed window's count,
// weighted by how much of it still overlaps the sliding window, plus the
// current window's count. It needs two integers per key, never lets more
// than the limit through in any window-long span that starts at a window
// boundary, and is within a few percent of an exact log elsewhere.
package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Result is the outcome of one Allow.
type Result struct {
	Allowed bool
	// RetryAfter is how long until a request under this key would be
	// allowed again; zero when allowed.
	RetryAfter time.Duration
	// Remaining is how many more requests the window allows after this one.
	Remaining int
}

// DefaultMaxKeys bounds the keys Memory tracks.
const DefaultMaxKeys = 1 << 20

// Memory is an in-process Limiter. It is safe for concurrent use.
type Memory struct {
	now     func() time.Time
	maxKeys int
	seed    maphash.Seed
	shards  [64]shard
}

type shard struct {
	mu      sync.Mutex
	windows map[string]*window
}

type window struct {
	start time.Time // start of the current fixed window
	size  time.Duration
	prev  int // requests counted in the previous fixed window
	cur   int // requests counted in the current one
}

// NewMemory returns a Memory limiter. now may be nil (time.Now); maxKeys ≤ 0
// means DefaultMaxKeys. When full, a shard drops its expired windows, then
// refuses new keys (fail closed) rather than grow without bound.
func NewMemory(now func() time.Time, maxKeys int) *Memory {
	if now == nil {
		now = time.Now
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	m := &Memory{now: now, maxKeys: maxKeys, seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].windows = map[string]*window{}
	}
	return m
}

// Allow counts one request under key against limit per window and says
// whether it may proceed. A request that is refused is not counted. limit
// must be positive and window at least a second.
func (m *Memory) Allow(_ context.Context, key string, limit int, size time.Duration) (Result, error) {
	if limit <= 0 || size < time.Second {
		return Result{}, errBadLimit(limit, size)
	}
	now := m.now()
	sh := &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	w, ok := sh.windows[key]
	if !ok {
		if len(sh.windows) >= m.maxKeys/len(m.shards) {
			sh.sweep(now)
			if len(sh.windows) >= m.maxKeys/len(m.shards) {
				return Result{RetryAfter: size}, nil
			}
		}
		w = &window{start: now.Truncate(size), size: size}
		sh.windows[key] = w
	}
	w.advance(now)
	elapsed := now.Sub(w.start)
	weight := 1 - float64(elapsed)/float64(size)
	used := float64(w.prev)*weight + float64(w.cur)
	if used+1 > float64(limit) {
		return Result{RetryAfter: w.retryAfter(now, limit)}, nil
	}
	w.cur++
	return Result{Allowed: true, Remaining: max(0, limit-int(used)-1)}, nil
}

// advance moves the fixed windows forward to the one holding now.
func (w *window) advance(now time.Time) {
	switch n := now.Sub(w.start) / w.size; {
	case n <= 0:
	case n == 1:
		w.prev, w.cur = w.cur, 0
		w.start = w.start.Add(w.size)
	default:
		w.prev, w.cur = 0, 0
		w.start = now.Truncate(w.size)
	}
}

// retryAfter estimates when the weighted count falls below limit: the
// previous window's share shrinks linearly, and at the next boundary the
// current count becomes the previous one.
func (w *window) retryAfter(now time.Time, limit int) time.Duration {
	elapsed := now.Sub(w.start)
	if w.cur < limit && w.prev > 0 {
		// prev*(1-t/size) + cur <= limit-1  →  t >= size*(1-(limit-1-cur)/prev)
		need := float64(w.size) * (1 - float64(limit-1-w.cur)/float64(w.prev))
		if d := time.Duration(need) - elapsed; d > 0 && need <= float64(w.size) {
			return d
		}
	}
	// Wait for the next boundary, then for enough of the (now previous)
	// current window to slide out.
	next := w.size - elapsed
	if w.cur > 0 {
		next += time.Duration(float64(w.size) * (1 - float64(limit-1)/float64(w.cur)))
	}
	return max(next, time.Second)
}

// sweep drops windows with nothing left to count. Called with sh.mu held.
func (sh *shard) sweep(now time.Time) {
	for k, w := range sh.windows {
		if now.Sub(w.start) >= 2*w.size {
			delete(sh.windows, k)
		}
	}
}
