package audit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// flaky is the real SQLite store with a switch that makes writes fail, as a
// database that goes away would.
type flaky struct {
	*store.SQLite
	down atomic.Bool
	slow atomic.Bool // writes wait while set: a store that cannot keep up
}

func (f *flaky) AppendAudit(ctx context.Context, rs []audit.Record) error {
	for f.slow.Load() {
		time.Sleep(time.Millisecond)
	}
	if f.down.Load() {
		return errors.New("database is unreachable")
	}
	return f.SQLite.AppendAudit(ctx, rs)
}

func newStore(t *testing.T) *flaky {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &flaky{SQLite: s}
}

func record(i int) audit.Record {
	return audit.Record{ID: fmt.Sprintf("aud_%06d", i), Timestamp: time.Now(), AgentID: "agent_a", Action: "read:x",
		Decision: "allow", Status: 200, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Mode: "enforce"}
}

// stored verifies the stored chain and returns its length.
func stored(t *testing.T, s *flaky) int {
	t.Helper()
	v := audit.NewVerifier(audit.GenesisHash)
	n := 0
	if err := s.ScanAudit(context.Background(), func(r audit.Record) error { n++; return v.Next(&r) }); err != nil {
		t.Fatalf("stored chain: %v", err)
	}
	return n
}

func TestWriterGroupCommit(t *testing.T) {
	s := newStore(t)
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				if err := w.Write(context.Background(), record(g*1000+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, s); n != 2000 {
		t.Fatalf("%d records stored, want 2000", n)
	}
	if err := w.Write(context.Background(), record(9999)); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestWriterSynchronous(t *testing.T) {
	s := newStore(t)
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := record(i)
		if err := w.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if n := stored(t, s); n != i+1 {
			t.Fatalf("after write %d, %d stored: a synchronous write must be durable on return", i, n)
		}
	}
	// A store failure is the caller's to see (it fails the check closed),
	// and the chain is not advanced past the unwritten record.
	s.down.Store(true)
	if err := w.Write(context.Background(), record(3)); err == nil {
		t.Fatal("write to a failing store succeeded")
	}
	s.down.Store(false)
	if err := w.Write(context.Background(), record(4)); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, s); n != 4 {
		t.Fatalf("%d stored, want 4", n)
	}
}

// TestWriterSurvivesStoreOutage: records queued when the store goes away
// are kept, in order, and land once it returns; meanwhile, once a write
// has failed, new records are refused (the decision fails closed) until a
// write succeeds again.
func TestWriterSurvivesStoreOutage(t *testing.T) {
	s := newStore(t)
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{FlushInterval: time.Millisecond, RetryBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		_ = w.Write(context.Background(), record(i))
	}
	s.slow.Store(true) // hold the flusher so the outage starts with records queued
	s.down.Store(true)
	for i := 10; i < 60; i++ {
		if err := w.Write(context.Background(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.slow.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for w.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w.Err() == nil || w.Pending() == 0 {
		t.Fatalf("during the outage: err %v, pending %d", w.Err(), w.Pending())
	}
	if err := w.Write(context.Background(), record(60)); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("write during the outage: %v, want ErrUnavailable", err)
	}
	s.down.Store(false)
	deadline = time.Now().Add(5 * time.Second)
	for w.Err() != nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := w.Write(context.Background(), record(61)); err != nil {
		t.Fatalf("write after the outage: %v", err)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, s); n != 61 {
		t.Fatalf("%d stored, want 61 (all queued, none refused)", n)
	}
}

// TestWriterBackpressure: a full queue makes Write wait, and a Write that
// gives up leaves no gap in the chain.
func TestWriterBackpressure(t *testing.T) {
	s := newStore(t)
	s.slow.Store(true)
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{FlushInterval: time.Millisecond, QueueSize: 10, RetryBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := w.Write(context.Background(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Write(ctx, record(10)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write into a full queue: %v", err)
	}
	s.slow.Store(false)
	if err := w.Write(context.Background(), record(11)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, s); n != 11 {
		t.Fatalf("%d stored, want 11 (the abandoned write must not be in the chain)", n)
	}
}

func TestWriterCloseReportsWhatIsLeft(t *testing.T) {
	s := newStore(t)
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Write(context.Background(), record(1))
	s.down.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); err == nil {
		t.Fatal("Close with an unwritable record reported success")
	}
}

func BenchmarkWriter(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(b *testing.B) audit.Store
	}{
		{"sqlite", func(b *testing.B) audit.Store {
			s, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "audit.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
		{"postgres", func(b *testing.B) audit.Store {
			s, err := store.OpenPostgres(context.Background(), pgtest.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
	} {
		b.Run(backend.name, func(b *testing.B) {
			// One goroutine hands records over faster than a database
			// stores them: a queue of a few batches makes it wait for the
			// store (backpressure), so the rate is the store's, and a
			// minute's lag bound lets a busy machine slow the run rather
			// than fail it (serve's 65,536 records at 500 ms would refuse).
			w, err := audit.NewWriter(context.Background(), backend.open(b), audit.WriterConfig{FlushInterval: 50 * time.Millisecond,
				QueueSize: 4 * audit.DefaultMaxBatch, MaxLag: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := w.Write(context.Background(), record(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			// Sustained means stored: the time includes the last flush.
			if err := w.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestWriterDrainsABacklogAtOnce: after a slow store write, the records
// that piled up are written batch after batch, not one batch a tick.
func TestWriterDrainsABacklogAtOnce(t *testing.T) {
	s := newStore(t)
	// An hour between ticks: a writer that wrote one batch a tick would
	// need 50 hours for this backlog, so draining it at all proves it is
	// written batch after batch, without a timing assertion.
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{FlushInterval: time.Hour, MaxBatch: 100, MaxLag: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	s.slow.Store(true)
	for i := range 5000 {
		if err := w.Write(context.Background(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.slow.Store(false)
	deadline := time.Now().Add(time.Minute)
	for w.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records still queued a minute on: the backlog waits for ticks", w.Pending())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
