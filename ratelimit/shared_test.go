package ratelimit_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// memCounts is a CountStore in memory, standing in for the database.
type memCounts struct {
	mu     sync.Mutex
	counts map[ratelimit.Window]map[string]ratelimit.Count
	calls  atomic.Int64
}

func (m *memCounts) SyncRateCounts(_ context.Context, replica string, mine []ratelimit.Count, want []ratelimit.Window) ([]ratelimit.Total, error) {
	m.calls.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[ratelimit.Window]map[string]ratelimit.Count{}
	}
	for _, c := range mine {
		w := ratelimit.Window{Key: c.Key, Start: c.Start.UTC()}
		if m.counts[w] == nil {
			m.counts[w] = map[string]ratelimit.Count{}
		}
		if old, ok := m.counts[w][replica]; !ok || old.Seq < c.Seq {
			m.counts[w][replica] = c
		}
	}
	var out []ratelimit.Total
	for _, w := range want {
		t := ratelimit.Total{Window: ratelimit.Window{Key: w.Key, Start: w.Start.UTC()}}
		for r, c := range m.counts[t.Window] {
			if r != replica {
				t.N += c.N
				t.Replicas++
			}
		}
		if t.Replicas > 0 {
			out = append(out, t)
		}
	}
	return out, nil
}

// requestPath marks the contexts of Allow calls, so counted can tell the
// request path's round trips from the background exchange's.
type requestPath struct{}

// counted counts the round trips made to a real store on the request path.
type counted struct {
	ratelimit.CountStore
	n *atomic.Int64
}

func (c counted) SyncRateCounts(ctx context.Context, replica string, mine []ratelimit.Count, want []ratelimit.Window) ([]ratelimit.Total, error) {
	if ctx.Value(requestPath{}) != nil {
		c.n.Add(1)
	}
	return c.CountStore.SyncRateCounts(ctx, replica, mine, want)
}

// TestSharedAcrossReplicas: replicas hammering one key on one store pass
// the limit within 10% in total, and do not ask the store on
// every request.
func TestSharedAcrossReplicas(t *testing.T) {
	backends := []struct {
		name string
		// database sets up one shared store and returns how a replica
		// connects to it.
		database func(t *testing.T) func() ratelimit.CountStore
	}{
		{"memory", func(*testing.T) func() ratelimit.CountStore {
			m := &memCounts{}
			return func() ratelimit.CountStore { return m }
		}},
		{"postgres", func(t *testing.T) func() ratelimit.CountStore {
			u := pgtest.NewDatabase(t)
			return func() ratelimit.CountStore {
				s, err := store.OpenPostgres(t.Context(), u)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
		}},
	}
	tests := []struct {
		replicas, limit, workers, attempts int
	}{
		{2, 500, 4, 1500},
		{3, 1000, 3, 2000},
	}
	for _, b := range backends {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/%d replicas/limit %d", b.name, tc.replicas, tc.limit), func(t *testing.T) {
				// A clock standing still: the window never turns over
				// during the test. Near the real time, since the store
				// sweeps counts by its own clock.
				at := time.Now().UTC()
				now := func() time.Time { return at }
				var allowed, asked, trips atomic.Int64
				var wg sync.WaitGroup
				connect := b.database(t)
				ctx := context.WithValue(t.Context(), requestPath{}, true)
				for r := range tc.replicas {
					// Each replica has its own handle, as separate processes do.
					cs := counted{connect(), &trips}
					l, err := ratelimit.NewShared(cs, ratelimit.SharedConfig{Replica: fmt.Sprintf("r%d", r), SyncInterval: 20 * time.Millisecond, Now: now})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = l.Close() })
					for range tc.workers {
						wg.Go(func() {
							for range tc.attempts {
								res, err := l.Allow(ctx, "agent/a/api", tc.limit, time.Minute)
								if err != nil {
									t.Error(err)
									return
								}
								asked.Add(1)
								if res.Allowed {
									allowed.Add(1)
								}
							}
						})
					}
				}
				wg.Wait()
				got, limit := allowed.Load(), int64(tc.limit)
				t.Logf("%d allowed of %d asked, limit %d, %d round trips on the request path", got, asked.Load(), limit, trips.Load())
				if got < limit*9/10 || got > limit*11/10 {
					t.Fatalf("%d allowed across %d replicas, want %d ± 10%%", got, tc.replicas, limit)
				}
				if bound := promisedTrips(tc.replicas, tc.limit); trips.Load() > bound {
					t.Fatalf("%d round trips on the request path for %d requests; Shared promises at most %d", trips.Load(), asked.Load(), bound)
				}
			})
		}
	}
}

// promisedTrips bounds the round trips the request path of the replicas
// makes for one busy key in one window, as Shared's doc reasons: each
// reservation takes a 1/(2m) share of what is left (m: the replicas, at
// least 2), so about log_{2m/(2m−1)}(limit) of them leave less than 2m,
// and at most 2m more of one each take the rest; each reservation may be
// cut back once (one more round trip), and each replica looks once more
// before it calls the key full.
func promisedTrips(replicas, limit int) int64 {
	m := float64(max(2, replicas))
	series := math.Ceil(math.Log(float64(limit)) / math.Log(2*m/(2*m-1)))
	return int64(2*(series+2*m)) + int64(replicas)
}

// TestSharedRoundTrips: a replica alone on a key asks the store a few
// times a window, not on every request.
func TestSharedRoundTrips(t *testing.T) {
	cs := &memCounts{}
	at := time.Date(2026, 5, 1, 12, 0, 30, 0, time.UTC)
	l, err := ratelimit.NewShared(cs, ratelimit.SharedConfig{Replica: "r0", SyncInterval: time.Hour, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	const limit = 10000
	n := 0
	for range limit + 100 {
		res, err := l.Allow(t.Context(), "k", limit, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			n++
		}
	}
	if n != limit {
		t.Fatalf("%d allowed, want %d", n, limit)
	}
	// About 2·log₄⁄₃(limit) exchanges: a read and a reservation each time
	// the share runs out.
	if calls := cs.calls.Load(); calls > 100 {
		t.Fatalf("%d round trips for %d requests", calls, limit+100)
	}
}

func TestSharedRejectsBadLimits(t *testing.T) {
	l, err := ratelimit.NewShared(&memCounts{}, ratelimit.SharedConfig{Replica: "r0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	for _, tc := range []struct {
		limit int
		size  time.Duration
	}{{0, time.Minute}, {10, time.Millisecond}} {
		if _, err := l.Allow(t.Context(), "k", tc.limit, tc.size); err == nil {
			t.Errorf("Allow(%d, %v) succeeded", tc.limit, tc.size)
		}
	}
	if _, err := ratelimit.NewShared(nil, ratelimit.SharedConfig{Replica: "r"}); err == nil {
		t.Error("NewShared without a store succeeded")
	}
}
