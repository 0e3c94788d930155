package gcbudget

import (
	"errors"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		name                string
		budget, live, roots uint64
		want                int
	}{
		{"small heap: the most growth", 64 * mib, 4 * mib, 1 * mib, MaxPercent},
		{"nothing live yet", 64 * mib, 0, 0, MaxPercent},
		{"between: the heap's goal at the budget", 64 * mib, 20 * mib, 2 * mib, 200},
		{"GOGC=100 alone reaches the budget", 64 * mib, 30 * mib, 4 * mib, MinPercent},
		{"live heap at the budget", 64 * mib, 64 * mib, 0, MinPercent},
		{"live heap past the budget", 64 * mib, 500 * mib, 20 * mib, MinPercent},
		{"large roots count as growth", 64 * mib, 8 * mib, 20 * mib, 200},
		{"a budget under 16 MiB: the runtime's minimum heap counts", 8 * mib, 1 * mib, 0, 200},
		{"a budget at 4 MiB: Go's default", 4 * mib, 0, 0, MinPercent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.budget, tc.live, tc.roots); got != tc.want {
				t.Errorf("Percent(%d MiB, %d MiB live, %d MiB roots) = %d, want %d", tc.budget/mib, tc.live/mib, tc.roots/mib, got, tc.want)
			}
			// Whatever the figures, the goal stays within the larger of the
			// budget and GOGC=100's goal.
			p := uint64(Percent(tc.budget, tc.live, tc.roots))
			goal, goal100 := tc.live+(tc.live+tc.roots)*p/100, 2*tc.live+tc.roots
			if goal > max(tc.budget, goal100) {
				t.Errorf("goal %d MiB past both the budget and GOGC=100's %d MiB", goal/mib, goal100/mib)
			}
		})
	}
}

// gogc is the process's GOGC as the runtime reports it.
func gogc(t *testing.T) int {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// collectUntil runs collections until the pacer has set want (its
// finalizer runs after a collection, on the runtime's finalizer goroutine).
func collectUntil(t *testing.T, p *Pacer, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for p.Percent() != want || gogc(t) != want {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d (pacer %d), want %d", gogc(t), p.Percent(), want)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// TestPacerFollowsTheLiveHeap: the percentage follows the live heap up and
// down across collections (the finalizer re-arms itself), and Stop puts
// GOGC back as it was.
func TestPacerFollowsTheLiveHeap(t *testing.T) {
	before := debug.SetGCPercent(137)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	p, err := Start(64 * mib)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	collectUntil(t, p, MaxPercent) // the test's own heap is a few MiB

	held := make([][]byte, 48)
	for i := range held {
		held[i] = make([]byte, mib)
		held[i][0] = 1
	}
	collectUntil(t, p, MinPercent) // 48 MiB live: GOGC=100 passes 64
	runtime.KeepAlive(held)

	held = nil
	collectUntil(t, p, MaxPercent)

	p.Stop()
	if got := gogc(t); got != 137 {
		t.Errorf("GOGC after Stop = %d, want 137 as before Start", got)
	}
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	runtime.GC()
	if got := gogc(t); got != 137 {
		t.Errorf("GOGC after Stop and two collections = %d, want 137: the pacer went on", got)
	}
}

func TestOnePacerAtATime(t *testing.T) {
	p, err := Start(64 * mib)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	if _, err := Start(64 * mib); !errors.Is(err, ErrRunning) {
		t.Fatalf("a second Start: %v, want ErrRunning", err)
	}
	p.Stop()
	p2, err := Start(64 * mib)
	if err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	p2.Stop()
}

// blocker's finalizer holds the runtime's one finalizer goroutine.
type blocker struct{ _ *int }

// TestPacerWhileFinalizersAreHeldUp: another finalizer holding the
// finalizer goroutine does not leave the percentage at 400 while the live
// heap grows; the backstop paces.
func TestPacerWhileFinalizersAreHeldUp(t *testing.T) {
	p, err := Start(64 * mib)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	collectUntil(t, p, MaxPercent)

	held, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	runtime.SetFinalizer(&blocker{}, func(*blocker) { close(held); <-release })
	for deadline := time.Now().Add(20 * time.Second); ; {
		runtime.GC()
		select {
		case <-held:
		case <-time.After(10 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the blocking finalizer never ran")
			}
			continue
		}
		break
	}

	live := make([][]byte, 48)
	for i := range live {
		live[i] = make([]byte, mib)
	}
	collectUntil(t, p, MinPercent)
	runtime.KeepAlive(live)
}

// TestPacerGoalWithinTheBudget: the heap's goal the runtime sets from the
// pacer's percentage is not above the larger of the budget and GOGC=100's
// goal, small budgets included, where the runtime's minimum heap (4 MiB ×
// GOGC/100) rather than the live heap sets the goal.
func TestPacerGoalWithinTheBudget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		budget uint64
	}{
		{"the default budget", 64 * mib},
		{"a budget below 4 MiB × 400%", 8 * mib},
		{"a budget at Go's minimum heap", 4 * mib},
		{"a budget of 1 MiB", mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(tc.budget)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			runtime.GC()
			p.pace() // from this collection's figures, not waiting for the finalizer
			s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"},
				{Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
			metrics.Read(s)
			goal, live, roots := s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()+s[3].Value.Uint64()
			if bound := max(tc.budget, 2*live+roots, heapMinimum); goal > bound {
				t.Errorf("heap goal %.1f MiB at GOGC=%d, past both the budget and GOGC=100's %.1f MiB (live %.1f MiB)",
					float64(goal)/mib, p.Percent(), float64(bound)/mib, float64(live)/mib)
			}
		})
	}
}

// TestStartStopRepeated: Start and Stop many times, with collections and
// pacing racing Stop (run with -race), leave no goroutine behind, GOGC as
// it was, and nothing set after Stop.
func TestStartStopRepeated(t *testing.T) {
	before := debug.SetGCPercent(137)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	goroutines := runtime.NumGoroutine()

	for i := range 200 {
		p, err := Start(64 * mib)
		if err != nil {
			t.Fatalf("Start #%d: %v", i, err)
		}
		done := make(chan struct{})
		go func() { // as the finalizer and the backstop do, until stopped
			defer close(done)
			for n := 0; n < 1000 && p.pace(); n++ {
				if n%100 == 0 {
					runtime.GC()
				}
			}
		}()
		p.Stop()
		p.Stop() // twice is harmless
		<-done
		p.mu.Lock()
		p.percent = 0 // so that a pace after Stop would set GOGC
		p.mu.Unlock()
		runtime.GC()
		if p.pace() {
			t.Fatalf("pace after Stop #%d went on", i)
		}
		if got := gogc(t); got != 137 {
			t.Fatalf("GOGC after Stop #%d = %d, want 137", i, got)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after 200 Start/Stop, %d before", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFiguresMissing: a Go without one of the figures gets Go's default,
// not the most growth.
func TestFiguresMissing(t *testing.T) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/no/such:bytes"}}
	metrics.Read(s)
	if _, _, _, ok := figures(s); ok {
		t.Fatal("figures ok with a metric this Go lacks")
	}
	s[2].Name = "/gc/scan/globals:bytes"
	metrics.Read(s)
	if live, _, _, ok := figures(s); !ok || live == 0 {
		t.Fatalf("figures = live %d, ok %v; want the live heap", live, ok)
	}
}
