package ratelimit_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// sharedBenchStores are the stores the Shared benchmarks run on.
func sharedBenchStores() []struct {
	name string
	open func(b *testing.B) ratelimit.CountStore
} {
	return []struct {
		name string
		open func(b *testing.B) ratelimit.CountStore
	}{
		{"memory", func(*testing.B) ratelimit.CountStore { return &memCounts{} }},
		{"postgres", func(b *testing.B) ratelimit.CountStore {
			s, err := openPostgresTB(b, pgtest.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
}

// BenchmarkSharedAllow: requests under one key that its reservation
// covers, the common case: no exchange.
func BenchmarkSharedAllow(b *testing.B) {
	for _, st := range sharedBenchStores() {
		b.Run(st.name, func(b *testing.B) {
			l, err := ratelimit.NewShared(st.open(b), ratelimit.SharedConfig{Replica: "r0"})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = l.Close() })
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Allow(b.Context(), "k", 1<<40, time.Hour); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSharedReserve: every request is a key's first, so each costs
// one reservation: an exchange with the store.
func BenchmarkSharedReserve(b *testing.B) {
	for _, st := range sharedBenchStores() {
		b.Run(st.name, func(b *testing.B) {
			l, err := ratelimit.NewShared(st.open(b), ratelimit.SharedConfig{Replica: "r0", SyncInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = l.Close() })
			i := 0
			for b.Loop() {
				i++
				res, err := l.Allow(b.Context(), "k"+strconv.Itoa(i), 100, time.Minute)
				if err != nil || !res.Allowed {
					b.Fatalf("%+v, %v", res, err)
				}
			}
		})
	}
}

// openPostgresTB opens a store handle on the database at u, closed when tb
// ends.
func openPostgresTB(tb testing.TB, u string) (*store.Postgres, error) {
	s, err := store.OpenPostgres(tb.Context(), u)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s, nil
}
