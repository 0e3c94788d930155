// Package gcbudget lets the garbage collector run less often while the
// heap is small (GC_HEAP_BUDGET_MB, docs/configuration.md), and finds the
// memory limit it must still keep within.
//
// Go's default, GOGC=100, collects each time the heap has grown by the
// live heap (and the roots) since the last collection. A server whose live
// heap is a few megabytes and which allocates on every request, as every
// gRPC call does, then collects many times a second: under `make
// bench-load` that was about a sixth of MeshGuard's CPU per Check
// (docs/performance.md). Within a heap budget this package lets the heap
// grow up to 5× the live heap (GOGC=400); the nearer the live heap comes to
// the budget the less it may grow, and once GOGC=100 alone would pass the
// budget the collector runs at GOGC=100. So the heap's goal is never above
// the larger of the budget and GOGC=100's goal, and the collector never
// runs more often than GOGC=100 would make it.
//
// The percentage is set again after every collection, from the runtime's
// own figures for that collection (runtime/metrics: the live heap, the
// stacks and globals scanned), by a finalizer that re-arms itself, and
// once a second besides, should the runtime's one finalizer goroutine be
// held up by another finalizer (a percentage left at 400 while the live
// heap grew would let the heap reach five times it). So the bounds above
// hold from the moment the Pacer has seen a collection: the runtime sets
// the next goal from the percentage chosen after the one before, and after
// a collection that finds the live heap grown, the goal is up to five times
// it until the Pacer runs (microseconds; up to a second while the finalizer
// goroutine is held). It is the process's setting, so one Pacer runs at a
// time.
//
// The package also reads the memory limit of the cgroup the process runs
// in (CgroupMemoryLimit, memlimit.go), from which serve sets Go's soft
// memory limit (GC_MEMORY_LIMIT_PERCENT): Go does not read it itself, so a
// heap growing toward a container's limit would otherwise be killed there.
package gcbudget

import (
	"errors"
	"math/bits"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// The percentages a Pacer chooses between: Go's default, and how far the
// heap may grow past the live heap while it is well within the budget.
const (
	MinPercent = 100
	MaxPercent = 400
)

// heapMinimum is the runtime's least heap goal at GOGC=100 (4 MiB, or
// less under GOEXPERIMENT=heapminimum512kib); at p percent it is
// heapMinimum × p/100, whatever the live heap.
const heapMinimum = 4 << 20

// ErrRunning is Start's error while another Pacer runs: GOGC is one
// setting per process.
var ErrRunning = errors.New("gcbudget: another pacer is running in this process")

// running is process-wide because what it guards is: GOGC.
var running atomic.Bool

// Percent is the GOGC percentage that keeps a collection's heap goal,
// live + (live + roots) × p / 100 but never below the runtime's minimum
// heap, heapMinimum × p / 100, within budget: at most MaxPercent, and never
// below MinPercent, whatever the budget (all in bytes).
func Percent(budget, live, roots uint64) int {
	if budget <= live || budget <= heapMinimum {
		return MinPercent
	}
	// In 128 bits: Percent is exported, and a sum or product that wrapped
	// would give 400 where 100 is due.
	p := uint64(MaxPercent)
	grows, carry := bits.Add64(live, roots, 0)
	if carry != 0 { // past 2^64 bytes: (budget-live)×100 is below 100×grows
		return MinPercent
	}
	if hi, lo := bits.Mul64(budget-live, 100); hi < grows { // else the quotient is past 2^64 (or grows is 0)
		p, _ = bits.Div64(hi, lo, grows)
	}
	// The runtime's minimum heap grows with the percentage too: a small
	// heap's goal is heapMinimum × p/100, not the live heap's.
	if budget < heapMinimum*MaxPercent/100 {
		p = min(p, budget*100/heapMinimum)
	}
	return int(min(max(p, MinPercent), MaxPercent))
}

// Pacer keeps GOGC at Percent of its budget after every collection.
type Pacer struct {
	budget uint64
	before int // GOGC when it started, restored by Stop

	mu      sync.Mutex
	stopped bool
	percent int           // the last set
	done    chan struct{} // closed by Stop: the backstop ends

	samples []metrics.Sample
}

// Start sets GOGC from the heap as it is and keeps it within budget bytes
// until Stop. It returns ErrRunning while another Pacer runs.
func Start(budget uint64) (*Pacer, error) {
	if !running.CompareAndSwap(false, true) {
		return nil, ErrRunning
	}
	p := &Pacer{budget: budget, done: make(chan struct{}), samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	p.before = debug.SetGCPercent(MinPercent) // pace sets it from the heap at once
	p.pace()
	arm(p)
	go p.backstop(time.Second)
	return p, nil
}

// backstop paces every interval until Stop.
func (p *Pacer) backstop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.pace()
		}
	}
}

// Percent is the percentage set after the last collection.
func (p *Pacer) Percent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.percent
}

// Stop restores GOGC as it was before Start. The pacer sets nothing after
// Stop returns.
func (p *Pacer) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	close(p.done)
	debug.SetGCPercent(p.before)
	running.Store(false)
}

// pace sets GOGC from the last collection's figures; false once stopped.
func (p *Pacer) pace() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	metrics.Read(p.samples)
	pc := MinPercent // Go's default unless every figure is there
	if live, stack, globals, ok := figures(p.samples); ok {
		pc = Percent(p.budget, live, stack+globals)
	}
	if pc != p.percent {
		debug.SetGCPercent(pc)
		p.percent = pc
	}
	return true
}

// figures are the live heap, the stacks and the globals the last
// collection scanned; ok is false if this Go lacks one of them.
func figures(s []metrics.Sample) (live, stack, globals uint64, ok bool) {
	for _, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0, 0, 0, false
		}
	}
	return s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64(), true
}

// sentinel is garbage as soon as it is made; its finalizer runs after the
// collection that finds it, paces, and makes the next. It holds a pointer
// so the allocator never packs it with other objects (a tiny allocation's
// finalizer waits for every object in its block).
type sentinel struct{ p *Pacer }

func arm(p *Pacer) {
	runtime.SetFinalizer(&sentinel{p: p}, func(s *sentinel) {
		if s.p.pace() {
			arm(s.p)
		}
	})
}
