package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)} }

func allowN(t *testing.T, m *Memory, key string, limit, n int) int {
	t.Helper()
	ok := 0
	for range n {
		r, err := m.Allow(context.Background(), key, limit, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if r.Allowed {
			ok++
		}
	}
	return ok
}

func TestLimitWithinWindow(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now, 0)
	if got := allowN(t, m, "a", 5, 8); got != 5 {
		t.Fatalf("allowed %d of 8 with limit 5", got)
	}
	r, _ := m.Allow(context.Background(), "a", 5, time.Minute)
	if r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > 2*time.Minute {
		t.Fatalf("over the limit: %+v", r)
	}
	if got := allowN(t, m, "b", 5, 5); got != 5 {
		t.Fatal("keys must not share a budget")
	}
}

func TestSlidingWindow(t *testing.T) {
	c := newClock() // at a minute boundary
	m := NewMemory(c.now, 0)
	if got := allowN(t, m, "k", 10, 10); got != 10 {
		t.Fatal(got)
	}
	// Half-way into the next window, half of the previous one still counts.
	c.add(90 * time.Second)
	if got := allowN(t, m, "k", 10, 10); got != 5 {
		t.Fatalf("half-way: allowed %d, want 5", got)
	}
	// Two windows later everything has slid out.
	c.add(2 * time.Minute)
	if got := allowN(t, m, "k", 10, 20); got != 10 {
		t.Fatalf("after two windows: allowed %d, want 10", got)
	}
}

func TestRetryAfterIsHonest(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now, 0)
	c.add(20 * time.Second)
	allowN(t, m, "k", 3, 3)
	r, _ := m.Allow(context.Background(), "k", 3, time.Minute)
	if r.Allowed {
		t.Fatal("4th request allowed")
	}
	c.add(r.RetryAfter)
	if r2, _ := m.Allow(context.Background(), "k", 3, time.Minute); !r2.Allowed {
		t.Fatalf("still refused after waiting RetryAfter=%s: %+v", r.RetryAfter, r2)
	}
}

func TestConcurrentNeverExceeds(t *testing.T) {
	m := NewMemory(newClock().now, 0)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if r, _ := m.Allow(context.Background(), "shared", 50, time.Minute); r.Allowed {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 50 {
		t.Fatalf("allowed %d, want exactly 50", ok.Load())
	}
}

func TestBoundedKeys(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now, 64) // one key per shard
	refused := 0
	for i := range 1000 {
		r, _ := m.Allow(context.Background(), fmt.Sprint("k", i), 10, time.Minute)
		if !r.Allowed {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("a full limiter must refuse new keys rather than grow")
	}
	c.add(3 * time.Minute) // every window expired: sweeping makes room
	if r, _ := m.Allow(context.Background(), "fresh", 10, time.Minute); !r.Allowed {
		t.Fatal("expired windows were not swept")
	}
}

func TestBadLimit(t *testing.T) {
	m := NewMemory(nil, 0)
	for _, tc := range []struct {
		limit int
		size  time.Duration
	}{{0, time.Minute}, {-1, time.Minute}, {1, time.Millisecond}} {
		if _, err := m.Allow(context.Background(), "k", tc.limit, tc.size); !errors.Is(err, ErrBadLimit) {
			t.Errorf("Allow(%d, %s) = %v", tc.limit, tc.size, err)
		}
	}
}

func BenchmarkAllow(b *testing.B) {
	m := NewMemory(nil, 0)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("agent_", i, "/policy/m")
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _ = m.Allow(context.Background(), keys[i%len(keys)], 1<<30, time.Minute)
			i++
		}
	})
}
