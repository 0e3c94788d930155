package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// The tests here force, one step at a time, interleavings of exchanges
// under which replicas once passed more than the limit together. Each
// drives the replicas from one goroutine where it can, with a clock that
// stands still and no background exchange unless the scenario needs one,
// so each run is the same and the bound is checked exactly: the sum of what
// the replicas passed must not exceed the limit at all.

const (
	raceKey   = "agent/a/api"
	raceLimit = 100
	raceSize  = time.Minute
)

// raceClock is a clock the test moves by hand. It starts a second into
// the current real minute, near the real time since the PostgreSQL store
// sweeps counts by its own clock.
type raceClock struct{ at atomic.Int64 }

func newRaceClock() *raceClock {
	c := &raceClock{}
	c.at.Store(time.Now().UTC().Truncate(raceSize).Add(time.Second).UnixNano())
	return c
}

func (c *raceClock) now() time.Time      { return time.Unix(0, c.at.Load()).UTC() }
func (c *raceClock) add(d time.Duration) { c.at.Add(int64(d)) }
func (c *raceClock) cfg(replica string, every time.Duration) ratelimit.SharedConfig {
	return ratelimit.SharedConfig{Replica: replica, SyncInterval: every, Now: c.now}
}

// drain calls Allow until it refuses (or max calls) and returns how many
// passed.
func drain(t *testing.T, l *ratelimit.Shared, limit int) int {
	t.Helper()
	n := 0
	for range 10 * limit {
		res, err := l.Allow(t.Context(), raceKey, limit, raceSize)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		if !res.Allowed {
			return n
		}
		n++
	}
	t.Fatalf("%d passed and never refused, limit %d", n, limit)
	return n
}

func newShared(t *testing.T, cs ratelimit.CountStore, cfg ratelimit.SharedConfig) *ratelimit.Shared {
	t.Helper()
	l, err := ratelimit.NewShared(cs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// openPostgres opens a store handle on the database at u, closed when t
// ends.
func openPostgres(t *testing.T, u string) *store.Postgres {
	t.Helper()
	s, err := openPostgresTB(t, u)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// givingBack wraps a replica's CountStore: the first exchange that lowers
// the replica's count under raceKey (the background exchange giving back a
// reservation the replica stopped using) reaches the store, and then its
// answer is held back until release is closed, as a slow network would.
type givingBack struct {
	ratelimit.CountStore
	mu      sync.Mutex
	last    int64
	held    bool
	reached chan struct{} // closed once the lowering exchange is in the store
	release chan struct{}
}

func (g *givingBack) SyncRateCounts(ctx context.Context, replica string, mine []ratelimit.Count, want []ratelimit.Window) ([]ratelimit.Total, error) {
	totals, err := g.CountStore.SyncRateCounts(ctx, replica, mine, want)
	hold := false
	g.mu.Lock()
	for _, c := range mine {
		if c.Key != raceKey {
			continue
		}
		if c.N < g.last && !g.held {
			g.held, hold = true, true
		}
		g.last = c.N
	}
	g.mu.Unlock()
	if hold {
		close(g.reached)
		<-g.release
	}
	return totals, err
}

// TestSharedGiveBackInFlight: a replica gives back the reservation of a
// key it stopped using; while the answer to that exchange is on its way, a
// request comes in for the key, and another replica reserves what was given
// back. The first replica must not pass requests against the reservation it
// gave back. It did: 124 passed with a limit of 100.
func TestSharedGiveBackInFlight(t *testing.T) {
	for _, b := range raceBackends() {
		t.Run(b.name, func(t *testing.T) {
			clock := newRaceClock()
			connect := b.connect(t)
			g := &givingBack{CountStore: connect(), reached: make(chan struct{}), release: make(chan struct{})}
			var once sync.Once
			unblock := func() { once.Do(func() { close(g.release) }) }
			// Registered after a's Close: runs first, so Close does not
			// wait on the held exchange forever.
			a := newShared(t, g, clock.cfg("a", time.Millisecond))
			t.Cleanup(unblock)
			bb := newShared(t, connect(), clock.cfg("b", time.Hour))

			// a passes one request against a reservation of a quarter
			// of the limit, then goes quiet: a second on, its background
			// exchange gives the rest back.
			if res, err := a.Allow(t.Context(), raceKey, raceLimit, raceSize); err != nil || !res.Allowed {
				t.Fatalf("first request: %+v, %v", res, err)
			}
			clock.add(time.Second)
			select {
			case <-g.reached:
			case <-time.After(time.Minute):
				t.Fatal("a never gave its reservation back")
			}
			// b takes what is left, then a sees traffic again before the
			// answer to its give-back arrives.
			passedB := drain(t, bb, raceLimit)
			passedA := 1 + drain(t, a, raceLimit)
			unblock()
			t.Logf("a passed %d, b %d, limit %d", passedA, passedB, raceLimit)
			if passedA+passedB > raceLimit {
				t.Fatalf("%d passed in total (a %d, b %d), limit %d", passedA+passedB, passedA, passedB, raceLimit)
			}
		})
	}
}

// errLost stands for an exchange lost on its way to the store.
var errLost = errors.New("connection lost")

// failingCutBack wraps a replica's CountStore: the first exchange that
// lowers the replica's count under raceKey (the cut back of a reservation
// that turned out to overlap others') never reaches the store.
type failingCutBack struct {
	ratelimit.CountStore
	mu     sync.Mutex
	last   int64
	failed bool
}

func (f *failingCutBack) SyncRateCounts(ctx context.Context, replica string, mine []ratelimit.Count, want []ratelimit.Window) ([]ratelimit.Total, error) {
	f.mu.Lock()
	for _, c := range mine {
		if c.Key != raceKey {
			continue
		}
		if c.N < f.last && !f.failed {
			f.failed = true
			f.mu.Unlock()
			return nil, errLost
		}
		f.last = c.N
	}
	f.mu.Unlock()
	return f.CountStore.SyncRateCounts(ctx, replica, mine, want)
}

// TestSharedCutBackFails: a replica's reservation overlaps what another
// reserved meanwhile, and the exchange cutting it back fails. The request
// is refused (fail closed), and the replica must not pass later requests
// against the reservation it meant to cut back. It did: 118 passed with a
// limit of 100.
func TestSharedCutBackFails(t *testing.T) {
	for _, b := range raceBackends() {
		t.Run(b.name, func(t *testing.T) {
			clock := newRaceClock()
			connect := b.connect(t)
			a := newShared(t, &failingCutBack{CountStore: connect()}, clock.cfg("a", time.Hour))
			bb := newShared(t, connect(), clock.cfg("b", time.Hour))

			// a uses its first reservation, a quarter of the limit; b
			// then takes the rest, unknown to a.
			passedA := 0
			for range raceLimit / 4 {
				if res, err := a.Allow(t.Context(), raceKey, raceLimit, raceSize); err != nil || !res.Allowed {
					t.Fatalf("request %d: %+v, %v", passedA+1, res, err)
				}
				passedA++
			}
			passedB := drain(t, bb, raceLimit)
			// a reserves again, learns of b's reservation and tries to
			// cut its own back.
			if _, err := a.Allow(t.Context(), raceKey, raceLimit, raceSize); !errors.Is(err, errLost) {
				t.Fatalf("request with the cut back lost: %v, want %v", err, errLost)
			}
			passedA += drain(t, a, raceLimit)
			t.Logf("a passed %d, b %d, limit %d", passedA, passedB, raceLimit)
			if passedA+passedB > raceLimit {
				t.Fatalf("%d passed in total (a %d, b %d), limit %d", passedA+passedB, passedA, passedB, raceLimit)
			}
		})
	}
}

// raceBackends are the stores the interleavings are forced on: each
// connect returns a new handle on one shared store.
func raceBackends() []struct {
	name    string
	connect func(t *testing.T) func() ratelimit.CountStore
} {
	return []struct {
		name    string
		connect func(t *testing.T) func() ratelimit.CountStore
	}{
		{"memory", func(*testing.T) func() ratelimit.CountStore {
			m := &memCounts{}
			return func() ratelimit.CountStore { return m }
		}},
		{"postgres", func(t *testing.T) func() ratelimit.CountStore {
			u := pgtest.NewDatabase(t)
			return func() ratelimit.CountStore { return openPostgres(t, u) }
		}},
	}
}

// TestSharedOverlappingReservationsPostgres: two replicas reserve at
// the same time, and the statement recording one reservation is slow to
// finish (here: it waits for a row lock the test holds; under load, its
// backend is not scheduled). Each must see the other's reservation or be
// seen by it. When the count was recorded and the others' read in one
// statement, the slow one read a snapshot taken before the other's
// reservations and the other read the slow one's old count: 118 passed
// with a limit of 100. The memory store records and reads under one lock,
// so this interleaving cannot happen there.
func TestSharedOverlappingReservationsPostgres(t *testing.T) {
	u := pgtest.NewDatabase(t)
	clock := newRaceClock()
	a := newShared(t, openPostgres(t, u), clock.cfg("a", time.Hour))
	b := newShared(t, openPostgres(t, u), clock.cfg("b", time.Hour))

	// a reserves a quarter of the limit and uses it up.
	passedA := 0
	for range raceLimit / 4 {
		if res, err := a.Allow(t.Context(), raceKey, raceLimit, raceSize); err != nil || !res.Allowed {
			t.Fatalf("request %d: %+v, %v", passedA+1, res, err)
		}
		passedA++
	}

	// Lock a's row so that a's next reservation stalls half-way.
	locker, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close(context.Background()) })
	tx, err := locker.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	var pid int
	if err := tx.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	tag, err := tx.Exec(t.Context(), `SELECT 1 FROM rate_counts WHERE key = $1 AND replica = 'a' FOR UPDATE`, raceKey)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("locking a's count: %v, %d rows", err, tag.RowsAffected())
	}

	type outcome struct {
		allowed bool
		err     error
	}
	next := make(chan outcome, 1)
	go func() {
		res, err := a.Allow(context.Background(), raceKey, raceLimit, raceSize)
		next <- outcome{res.Allowed, err}
	}()
	waitBlockedBy(t, u, pid)

	// b reserves and uses everything it sees left while a's reservation is
	// in flight.
	passedB := drain(t, b, raceLimit)

	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	o := <-next
	if o.err != nil {
		t.Fatalf("a's stalled request: %v", o.err)
	}
	if o.allowed {
		passedA += 1 + drain(t, a, raceLimit)
	}
	t.Logf("a passed %d, b %d, limit %d", passedA, passedB, raceLimit)
	if passedA+passedB > raceLimit {
		t.Fatalf("%d passed in total (a %d, b %d), limit %d", passedA+passedB, passedA, passedB, raceLimit)
	}
}

// waitBlockedBy waits until some backend waits for a lock held by the
// backend pid.
func waitBlockedBy(t *testing.T, u string, pid int) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		if err := c.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the reservation never reached the locked row")
		}
		time.Sleep(time.Millisecond)
	}
}
