package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Count is one replica's count of requests under a key in one fixed window.
type Count struct {
	Key   string
	Start time.Time     // the window's start
	Size  time.Duration // the window's length
	N     int64
}

// Window names one fixed window of a key.
type Window struct {
	Key   string
	Start time.Time
}

// Total is what the other replicas counted under a key in one window.
type Total struct {
	Window
	N        int64
	Replicas int // how many other replicas counted there
}

// CountStore shares counts between replicas (store.Postgres).
type CountStore interface {
	// SyncRateCounts records replica's counts, each replacing a smaller
	// one for its key and window, and returns the other replicas' totals
	// for the windows asked about (windows nobody else counted in may be
	// left out). One round trip.
	SyncRateCounts(ctx context.Context, replica string, mine []Count, want []Window) ([]Total, error)
}

// SharedConfig configures a Shared limiter.
type SharedConfig struct {
	// Replica names this replica's counts; unique among the replicas.
	Replica string
	// SyncInterval is how often counts are exchanged (default 50 ms).
	SyncInterval time.Duration
	// Now is the clock (time.Now if nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Shared is a Limiter whose limits hold across replicas (SPEC §6: within
// 10%). It uses Memory's sliding-window counter over the sum of every
// replica's counts, but decides locally: counts are exchanged through a
// CountStore every SyncInterval in the background, and on the request path
// only when this replica has used its share of what was left at the last
// exchange. That share is (limit − used) / (2 × replicas counting), so the
// replicas together cannot pass the limit between exchanges, and a busy key
// costs a round trip a few times per window rather than on every request.
// A key not exchanged for a while (or never) is exchanged before deciding.
type Shared struct {
	store   CountStore
	replica string
	every   time.Duration
	now     func() time.Time
	log     *slog.Logger

	mu   sync.Mutex
	keys map[string]*sharedKey

	stop context.CancelFunc
	done chan struct{}
}

type sharedKey struct {
	mu       sync.Mutex
	key      string
	w        window // this replica's counts
	rprev    int    // the others' count in the previous window
	rcur     int    // the others' count in the current one
	replicas int    // replicas counting here, this one included
	pushed   int    // w.cur as last sent
	finished []Count
	synced   time.Time // last exchange (zero: never)
	used     time.Time // last Allow
}

// NewShared starts a Shared limiter; Close stops it.
func NewShared(store CountStore, cfg SharedConfig) (*Shared, error) {
	if store == nil || cfg.Replica == "" {
		return nil, errors.New("ratelimit: NewShared: a store and a replica name are required")
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 50 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Shared{store: store, replica: cfg.Replica, every: cfg.SyncInterval, now: cfg.Now, log: cfg.Logger,
		keys: map[string]*sharedKey{}, stop: stop, done: make(chan struct{})}
	go s.run(ctx)
	return s, nil
}

// stale is how old a key's last exchange may be before Allow exchanges
// first: a few missed background rounds.
func (s *Shared) stale() time.Duration { return 4 * s.every }

// Allow counts one request under key against limit per window, across
// replicas. A refused request is not counted. An error means the counts
// could not be exchanged when they had to be (the caller fails closed).
func (s *Shared) Allow(ctx context.Context, key string, limit int, size time.Duration) (Result, error) {
	if limit <= 0 || size < time.Second {
		return Result{}, errBadLimit(limit, size)
	}
	now := s.now()
	s.mu.Lock()
	k, ok := s.keys[key]
	if !ok || k.w.size != size {
		k = &sharedKey{key: key, w: window{start: now.Truncate(size), size: size}, replicas: 1}
		s.keys[key] = k
	}
	s.mu.Unlock()

	k.mu.Lock()
	defer k.mu.Unlock()
	k.advance(now)
	k.used = now
	if now.Sub(k.synced) > s.stale() {
		if err := s.exchangeLocked(ctx, k); err != nil {
			return Result{}, err
		}
	}
	used := k.total(now)
	if used+1 <= float64(limit) && k.w.cur-k.pushed >= k.share(limit, used) {
		// This replica used its share since the last exchange: look again.
		if err := s.exchangeLocked(ctx, k); err != nil {
			return Result{}, err
		}
		used = k.total(now)
	}
	if used+1 > float64(limit) {
		all := window{start: k.w.start, size: size, prev: k.w.prev + k.rprev, cur: k.w.cur + k.rcur}
		return Result{RetryAfter: all.retryAfter(now, limit)}, nil
	}
	k.w.cur++
	return Result{Allowed: true, Remaining: max(0, limit-int(used)-1)}, nil
}

// share is how many requests this replica may pass before exchanging
// again: its part of what was left at the last exchange. Called with k.mu.
func (k *sharedKey) share(limit int, used float64) int {
	left := float64(limit) - (used - float64(k.w.cur-k.pushed))
	return max(1, int(left/float64(2*k.replicas)))
}

// total is the weighted count of every replica. Called with k.mu held.
func (k *sharedKey) total(now time.Time) float64 {
	weight := 1 - float64(now.Sub(k.w.start))/float64(k.w.size)
	return float64(k.w.prev+k.rprev)*weight + float64(k.w.cur+k.rcur)
}

// advance moves the windows to the one holding now, keeping the final count
// of a window that ends for the next exchange. Called with k.mu held.
func (k *sharedKey) advance(now time.Time) {
	n := now.Sub(k.w.start) / k.w.size
	if n <= 0 {
		return
	}
	if k.w.cur > k.pushed {
		k.finished = append(k.finished, Count{Key: k.key, Start: k.w.start, Size: k.w.size, N: int64(k.w.cur)})
	}
	if n == 1 {
		k.rprev, k.rcur = k.rcur, 0
	} else {
		k.rprev, k.rcur = 0, 0
	}
	k.w.advance(now)
	k.pushed = 0
}

// sent is what one exchange sent for a key.
type sent struct {
	k        *sharedKey
	start    time.Time
	cur      int
	finished int
}

// snapshot collects what to send for k. Called with k.mu held.
func (k *sharedKey) snapshot(mine []Count, want []Window) (sent, []Count, []Window) {
	mine = append(mine, k.finished...)
	// Sent even when zero: it tells the others this replica counts here,
	// which shrinks their share.
	mine = append(mine, Count{Key: k.key, Start: k.w.start, Size: k.w.size, N: int64(k.w.cur)})
	want = append(want, Window{k.key, k.w.start}, Window{k.key, k.w.start.Add(-k.w.size)})
	return sent{k: k, start: k.w.start, cur: k.w.cur, finished: len(k.finished)}, mine, want
}

// apply takes in the answer to what sn sent. Called with k.mu held; the
// window may have moved on since the snapshot.
func (sn sent) apply(totals map[Window]Total, at time.Time) {
	k := sn.k
	k.finished = k.finished[:copy(k.finished, k.finished[sn.finished:])]
	if !k.w.start.Equal(sn.start) {
		return // advanced meanwhile: the next exchange is for the new window
	}
	k.pushed = max(k.pushed, sn.cur)
	k.synced = at
	cur, prev := totals[Window{k.key, k.w.start.UTC()}], totals[Window{k.key, k.w.start.Add(-k.w.size).UTC()}]
	// Counts only grow within a window: never step back to an older
	// answer.
	k.rcur, k.rprev = max(k.rcur, int(cur.N)), max(k.rprev, int(prev.N))
	k.replicas = 1 + max(cur.Replicas, prev.Replicas)
}

// exchange sends the snapshots' counts and reads the others', returning
// the answer by window.
func (s *Shared) exchange(ctx context.Context, mine []Count, want []Window) (map[Window]Total, error) {
	totals, err := s.store.SyncRateCounts(ctx, s.replica, mine, want)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: sharing counts: %w", err)
	}
	byWindow := make(map[Window]Total, len(totals))
	for _, t := range totals {
		byWindow[Window{t.Key, t.Start.UTC()}] = t
	}
	return byWindow, nil
}

// exchangeLocked exchanges one key on the request path, with k.mu held:
// its other requests wait for the answer anyway.
func (s *Shared) exchangeLocked(ctx context.Context, k *sharedKey) error {
	at := s.now()
	sn, mine, want := k.snapshot(nil, nil)
	totals, err := s.exchange(ctx, mine, want)
	if err != nil {
		return err
	}
	sn.apply(totals, at)
	return nil
}

// run exchanges the counts of keys in use every SyncInterval and forgets
// keys idle for two windows.
func (s *Shared) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	last := s.now()
	for {
		select {
		case <-ctx.Done():
			s.syncActive(context.Background(), last)
			return
		case <-t.C:
		}
		at := s.now()
		if err := s.syncActive(ctx, last); err != nil && ctx.Err() == nil {
			s.log.Warn("sharing rate-limit counts failed; replicas may pass more than the limit until it works again", "error", err)
			continue
		}
		last = at
	}
}

// syncActive exchanges the keys used since 'since' (and those with counts
// not yet sent) in one round trip, without holding their locks meanwhile.
func (s *Shared) syncActive(ctx context.Context, since time.Time) error {
	now := s.now()
	var (
		sns  []sent
		mine []Count
		want []Window
	)
	s.mu.Lock()
	for name, k := range s.keys {
		k.mu.Lock()
		k.advance(now)
		switch {
		case !k.used.Before(since) || len(k.finished) > 0 || k.w.cur > k.pushed:
			var sn sent
			sn, mine, want = k.snapshot(mine, want)
			sns = append(sns, sn)
		case now.Sub(k.used) > 2*k.w.size:
			delete(s.keys, name)
		}
		k.mu.Unlock()
	}
	s.mu.Unlock()
	if len(sns) == 0 {
		return nil
	}
	totals, err := s.exchange(ctx, mine, want)
	if err != nil {
		return err
	}
	for _, sn := range sns {
		sn.k.mu.Lock()
		sn.apply(totals, now)
		sn.k.mu.Unlock()
	}
	return nil
}

// Close stops the background exchange after sending the last counts.
func (s *Shared) Close() error {
	s.stop()
	<-s.done
	return nil
}
