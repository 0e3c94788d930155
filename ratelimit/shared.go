package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Count is one replica's count of requests under a key in one fixed window:
// those it passed plus those it reserved and may still pass.
type Count struct {
	Key   string
	Start time.Time     // the window's start
	Size  time.Duration // the window's length
	N     int64
	// Seq orders one replica's counts: a count replaces the stored one
	// only if its Seq is higher, so exchanges arriving out of order do
	// no harm, and a count may go down (a reservation given back).
	Seq int64
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
	// SyncRateCounts records replica's counts, each replacing one with a
	// lower Seq for its key and window, and returns the other replicas' totals
	// for the windows asked about (windows nobody else counted in may be
	// left out).
	//
	// The counts must be recorded, visible to every exchange that reads
	// from then on, before the totals are read: then of two exchanges
	// that overlap in time, at least one sees the other's counts, which
	// is what keeps the limit (see Shared). A single PostgreSQL statement
	// that writes and reads does not do this: it reads the snapshot taken
	// when it started.
	SyncRateCounts(ctx context.Context, replica string, mine []Count, want []Window) ([]Total, error)
}

// SharedConfig configures a Shared limiter.
type SharedConfig struct {
	// Replica names this replica's counts; unique among the replicas.
	Replica string
	// SyncInterval is how often counts are exchanged in the background
	// (default 50 ms).
	SyncInterval time.Duration
	// Now is the clock (time.Now if nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Shared is a Limiter whose limits hold across replicas. It applies
// Memory's sliding-window counter to the sum of every replica's counts,
// without a round trip per request: a replica reserves a share of what is
// left, records the reservation in the CountStore (so the others see it at
// once), and passes requests against it locally; only when it is used up
// does the next request exchange counts again. The share is
// (limit − used) / (2 × replicas counting, at least 2), so a busy key costs
// a few round trips per window (about log₄⁄₃ of the limit) rather than one
// per request.
//
// Why the limit holds, whatever the scheduling. A replica passes requests
// only against a reservation it has confirmed: it recorded the count, then
// read the others' (CountStore's order), and the total it read, its own
// new count included, was within the limit; if it was not, it cuts the
// reservation back to what fits before passing anything. What the store
// holds for a replica is never below what the replica may pass: a
// reservation grows only after it is recorded, and shrinks (given back,
// cut back, a window's final count) here before the store hears of it, so
// a failed or late exchange leaves the store erring high; sequence numbers
// keep a late exchange from replacing a newer count. Take the replica whose
// last confirmation read last: every other replica's confirmed count had
// been recorded before its own read, hence before this one, which saw it
// (or a larger one) and still found the sum within the limit. So the
// replicas' confirmed reservations together, and what they pass, stay
// within the limit exactly (the share's size only decides how often counts
// are exchanged and how often a reservation is cut back). This assumes the
// replicas' clocks agree on where windows start; a replica whose clock
// runs behind can still add to a window the others have moved past.
//
// In the background, every SyncInterval, a replica reads the others'
// counts and gives back what it reserved for keys it no longer sees
// traffic for, so an idle replica does not hold capacity the others need.
// A refused request costs no round trip while the last exchange, under a
// SyncInterval ago, found the limit reached.
type Shared struct {
	store   CountStore
	replica string
	every   time.Duration
	now     func() time.Time
	log     *slog.Logger
	seq     atomic.Int64

	mu   sync.Mutex
	keys map[string]*sharedKey

	stop context.CancelFunc
	done chan struct{}
}

type sharedKey struct {
	mu       sync.Mutex
	key      string
	w        window // this replica's passed requests
	reserved int    // this replica's count as recorded: passed plus reserved
	rprev    int    // the others' count in the previous window
	rcur     int    // the others' count in the current one
	replicas int    // replicas counting here, this one included
	full     bool   // the last exchange found nothing left
	recorded int64  // Seq of the last count sent for the current window
	finished []Count
	synced   time.Time // last exchange (zero: never)
	used     time.Time // last Allow
	dropped  bool      // removed from Shared.keys
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
	// Seq must grow across restarts of a replica that keeps its name.
	s.seq.Store(cfg.Now().UnixMicro())
	go s.run(ctx)
	return s, nil
}

// Allow counts one request under key against limit per window, across
// replicas. A refused request is not counted. An error means the counts
// could not be exchanged when they had to be (the caller fails closed).
func (s *Shared) Allow(ctx context.Context, key string, limit int, size time.Duration) (Result, error) {
	if limit <= 0 || size < time.Second {
		return Result{}, errBadLimit(limit, size)
	}
	now := s.now()
	k := s.key(key, size, now)
	defer k.mu.Unlock()
	k.advance(now)
	k.used = now
	if k.w.cur >= k.reserved && (!k.full || now.Sub(k.synced) >= s.every) {
		if err := s.reserve(ctx, k, limit, now); err != nil {
			return Result{}, err
		}
	}
	if k.w.cur >= k.reserved {
		all := window{start: k.w.start, size: size, prev: k.w.prev + k.rprev, cur: k.w.cur + k.rcur}
		return Result{RetryAfter: all.retryAfter(now, limit)}, nil
	}
	k.w.cur++
	return Result{Allowed: true, Remaining: max(0, limit-int(k.total(now)))}, nil
}

// key returns key's counts, locked.
func (s *Shared) key(key string, size time.Duration, now time.Time) *sharedKey {
	for {
		s.mu.Lock()
		k, ok := s.keys[key]
		if !ok || k.w.size != size {
			k = &sharedKey{key: key, w: window{start: now.Truncate(size), size: size}, replicas: 1, used: now}
			s.keys[key] = k
		}
		s.mu.Unlock()
		k.mu.Lock()
		if !k.dropped {
			return k
		}
		// syncActive forgot it between the two locks: counting into it
		// would lose the request.
		k.mu.Unlock()
	}
}

// reserve reserves this replica's share of what is left under k and
// records it, learning the others' counts in the same round trip. Called
// with k.mu held: the key's other requests wait for the answer anyway.
func (s *Shared) reserve(ctx context.Context, k *sharedKey, limit int, now time.Time) error {
	share := k.share(limit, now)
	if share <= 0 {
		// Full as last seen: look again before saying so.
		if err := s.exchangeLocked(ctx, k, k.reserved); err != nil {
			return err
		}
		if share = k.share(limit, now); share <= 0 {
			k.full = true
			return nil
		}
	}
	k.full = false
	if err := s.exchangeLocked(ctx, k, k.w.cur+share); err != nil {
		return err
	}
	// The answer includes what others reserved since the view the share
	// came from (however long ago that was): keep only what still fits.
	if over := int(math.Ceil(k.total(now) - float64(limit))); over > 0 {
		fit := max(k.w.cur, k.reserved-over)
		k.full = fit == k.w.cur
		// Cut back here first: should the exchange fail, the store
		// keeps the larger count, which errs on the safe side.
		k.reserved = fit
		return s.exchangeLocked(ctx, k, fit)
	}
	return nil
}

// share is what this replica may reserve: its part of what is left. A
// replica that sees nobody else still assumes one other, so two replicas
// reserving at the same moment, each unaware of the other, together take
// at most half of what is left. Called with k.mu held.
func (k *sharedKey) share(limit int, now time.Time) int {
	left := float64(limit) - k.total(now)
	if left < 1 {
		return 0
	}
	return max(1, int(left/float64(2*max(2, k.replicas))))
}

// total is the weighted count of every replica, this one's reservation
// included. Called with k.mu held.
func (k *sharedKey) total(now time.Time) float64 {
	weight := 1 - float64(now.Sub(k.w.start))/float64(k.w.size)
	return float64(k.w.prev+k.rprev)*weight + float64(max(k.w.cur, k.reserved)+k.rcur)
}

// advance moves the windows to the one holding now; the final count of a
// window that ends (passed requests only: what was reserved and not used
// is given back) goes out with the next exchange. Called with k.mu held.
func (k *sharedKey) advance(now time.Time) {
	n := now.Sub(k.w.start) / k.w.size
	if n <= 0 {
		return
	}
	k.finished = append(k.finished, Count{Key: k.key, Start: k.w.start, Size: k.w.size, N: int64(k.w.cur)})
	if n == 1 {
		k.rprev, k.rcur = k.rcur, 0
	} else {
		k.rprev, k.rcur = 0, 0
	}
	k.w.advance(now)
	k.reserved, k.full = 0, false
}

// sent is what one exchange sent for a key.
type sent struct {
	k        *sharedKey
	start    time.Time
	count    int
	seq      int64
	finished int
}

// snapshot collects what to send for k, recording count for its current
// window. Called with k.mu held.
func (s *Shared) snapshot(k *sharedKey, count int, mine []Count, want []Window) (sent, []Count, []Window) {
	for _, c := range k.finished {
		c.Seq = s.seq.Add(1)
		mine = append(mine, c)
	}
	// Sent even when zero: it tells the others this replica counts here,
	// which shrinks their share.
	k.recorded = s.seq.Add(1)
	mine = append(mine, Count{Key: k.key, Start: k.w.start, Size: k.w.size, N: int64(count), Seq: k.recorded})
	want = append(want, Window{k.key, k.w.start}, Window{k.key, k.w.start.Add(-k.w.size)})
	return sent{k: k, start: k.w.start, count: count, seq: k.recorded, finished: len(k.finished)}, mine, want
}

// apply takes in the answer to what sn sent. Called with k.mu held; the
// window may have moved on since the snapshot.
func (sn sent) apply(totals map[Window]Total, at time.Time) {
	k := sn.k
	k.finished = k.finished[:copy(k.finished, k.finished[sn.finished:])]
	if !k.w.start.Equal(sn.start) {
		return // advanced meanwhile: the next exchange is for the new window
	}
	k.synced = at
	cur, prev := totals[Window{k.key, k.w.start.UTC()}], totals[Window{k.key, k.w.start.Add(-k.w.size).UTC()}]
	k.rcur, k.rprev = int(cur.N), int(prev.N)
	k.replicas = 1 + max(cur.Replicas, prev.Replicas)
}

// exchange sends counts and reads the others', returning them by window.
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

// exchangeLocked records count for k and reads the others' counts, with
// k.mu held.
func (s *Shared) exchangeLocked(ctx context.Context, k *sharedKey, count int) error {
	at := s.now()
	sn, mine, want := s.snapshot(k, count, nil, nil)
	totals, err := s.exchange(ctx, mine, want)
	if err != nil {
		return err
	}
	sn.apply(totals, at)
	k.reserved = count
	return nil
}

// run exchanges counts every SyncInterval and forgets keys idle for two
// windows.
func (s *Shared) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	last := s.now()
	for {
		select {
		case <-ctx.Done():
			if err := s.syncAll(context.Background(), last); err != nil {
				s.log.Warn("sharing the last rate-limit counts failed", "error", err)
			}
			return
		case <-t.C:
		}
		at := s.now()
		if err := s.syncAll(ctx, last); err != nil && ctx.Err() == nil {
			s.log.Warn("sharing rate-limit counts failed; limits are shared again once it works", "error", err)
			continue
		}
		last = at
	}
}

// syncAll exchanges every key's counts in one round trip, without holding
// their locks meanwhile. Keys not used since 'since' give back what they
// reserved and did not use.
func (s *Shared) syncAll(ctx context.Context, since time.Time) error {
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
		if now.Sub(k.used) > 2*k.w.size && len(k.finished) == 0 {
			delete(s.keys, name)
			k.dropped = true
			k.mu.Unlock()
			continue
		}
		count := k.reserved
		if k.used.Before(since) {
			// Given back here, before the store hears of it: once it
			// has, others may reserve what this replica gave back, so
			// a request arriving meanwhile must not pass against it.
			count = k.w.cur
			k.reserved = count
		}
		var sn sent
		sn, mine, want = s.snapshot(k, count, mine, want)
		sns = append(sns, sn)
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
