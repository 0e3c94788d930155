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
// Why nothing is lost either. A replica refuses without asking again (the
// key is full) only on a view it read after recording what it holds, all
// of it passed, that left nothing. A reservation cut back to nothing is
// not such a view: the others may be cutting theirs back at the same
// moment, each by the whole excess (three replicas doing so once left 13%
// of a limit unused), so the replica reserves again from the cut back's
// own answer, up to maxCutBacks times per request (at most
// 1 + 2×maxCutBacks exchanges per request; past that the request is
// refused and the next one tries again). When every replica with requests
// left is full, take the one whose deciding view was read last: every
// other's final count, which is what it passed, was recorded before its
// own view, hence before this one, which found the limit reached. So
// together they passed the limit (their weighted count came within one
// request of it), not less, whatever the scheduling and without relying on
// the clock. Capacity freed later (a reservation given back by an idle
// replica, the previous window weighing less as time goes on) is found by
// the background exchange, which marks the key not full when its view
// (also read after recording what the replica holds) has room: a full key
// costs the request path at most one reservation per SyncInterval.
//
// In the background, every SyncInterval, a replica reads the others'
// counts and gives back what it reserved for keys it no longer sees
// traffic for, so an idle replica does not hold capacity the others need.
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
	limit    int    // as the last request asked
	// full: an exchange that recorded all this replica holds, all of it
	// passed, found nothing left; requests are refused without asking
	// again until the background exchange finds room (see syncAll).
	full     bool
	recorded int64 // Seq of the last count sent for the current window
	finished []Count
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
	k.limit = limit
	if k.w.cur >= k.reserved && !k.full {
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

// maxCutBacks bounds the reservations one request makes when each turns
// out to overlap others' (see reserve): a request makes at most
// 1 + 2×maxCutBacks exchanges.
const maxCutBacks = 3

// reserve reserves this replica's share of what is left under k and
// records it, learning the others' counts in the same round trip. Called
// with k.mu held: the key's other requests wait for the answer anyway.
//
// It marks the key full only on a view read after this replica recorded
// what it holds, all of it passed: the view a cut back to nothing was
// decided on is older than the cut back, and may hold reservations the
// others are cutting back at the same moment (each by the whole excess),
// so it looks again, from the cut back's own answer.
func (s *Shared) reserve(ctx context.Context, k *sharedKey, limit int, now time.Time) error {
	looked := false // the view was read after recording k.reserved, which is k.w.cur
	for cuts := 0; ; {
		share := k.share(limit, now)
		if share <= 0 {
			if looked {
				k.full = true
				return nil
			}
			// Full as last seen: look again before saying so.
			if err := s.exchangeLocked(ctx, k, k.reserved); err != nil {
				return err
			}
			looked = true
			continue
		}
		if cuts == maxCutBacks {
			// Refused, but not marked full: the next request tries
			// again.
			return nil
		}
		if err := s.exchangeLocked(ctx, k, k.w.cur+share); err != nil {
			return err
		}
		// The answer includes what others reserved since the view the
		// share came from (however long ago that was): keep only what
		// still fits.
		over := int(math.Ceil(k.total(now) - float64(limit)))
		if over <= 0 {
			return nil
		}
		cuts++
		fit := max(k.w.cur, k.reserved-over)
		// Cut back here first: should the exchange fail, the store
		// keeps the larger count, which errs on the safe side.
		k.reserved = fit
		if err := s.exchangeLocked(ctx, k, fit); err != nil {
			return err
		}
		if fit > k.w.cur {
			return nil
		}
		looked = true
	}
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
func (sn sent) apply(totals map[Window]Total) {
	k := sn.k
	k.finished = k.finished[:copy(k.finished, k.finished[sn.finished:])]
	if !k.w.start.Equal(sn.start) {
		return // advanced meanwhile: the next exchange is for the new window
	}
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
	sn, mine, want := s.snapshot(k, count, nil, nil)
	totals, err := s.exchange(ctx, mine, want)
	if err != nil {
		return err
	}
	sn.apply(totals)
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
		k := sn.k
		k.mu.Lock()
		sn.apply(totals)
		if k.full && k.w.start.Equal(sn.start) && k.share(k.limit, now) > 0 {
			// Room again (given back, cut back, or the previous
			// window weighs less now): the next request reserves.
			// This view was read after the count the replica holds
			// was recorded, so a full key costs the request path at
			// most one reservation per SyncInterval.
			k.full = false
		}
		k.mu.Unlock()
	}
	return nil
}

// Close stops the background exchange after sending the last counts.
func (s *Shared) Close() error {
	s.stop()
	<-s.done
	return nil
}
