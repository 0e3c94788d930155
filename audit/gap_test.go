package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// lossyBackend is a store and a way to make it lose its newest committed
// records, as PostgreSQL with synchronous_commit off does in a crash, or a
// failover to an asynchronous replica that never had them.
type lossyBackend struct {
	name string
	open func(t *testing.T) (outageStore, func(n int))
}

func lossyBackends() []lossyBackend {
	return []lossyBackend{
		{"sqlite", func(t *testing.T) (outageStore, func(int)) {
			path := filepath.Join(t.TempDir(), "audit.db")
			s, err := store.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			raw, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = raw.Close() })
			return s, func(n int) {
				if _, err := raw.Exec(`DELETE FROM audit WHERE seq > (SELECT MAX(seq) FROM audit) - ?`, n); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"postgres", func(t *testing.T) (outageStore, func(int)) {
			u := pgtest.NewDatabase(t)
			s, err := store.OpenPostgres(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			raw, err := sql.Open("pgx", u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = raw.Close() })
			return s, func(n int) {
				// The rows and the chain's head go back together, as they
				// were committed together.
				tx, err := raw.Begin()
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = tx.Rollback() }()
				for _, q := range []string{
					`DELETE FROM audit WHERE seq > (SELECT MAX(seq) FROM audit) - $1`,
					`UPDATE audit_chains SET records = records - $1, head = (SELECT encode(hash, 'hex') FROM audit ORDER BY seq DESC LIMIT 1)`,
				} {
					if _, err := tx.Exec(q, n); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
}

// TestWriterRecoversFromALostTail: the store loses the newest records the
// writer had stored, under the running writer. Before, the chain no longer
// linked: on PostgreSQL every write failed (every check 503) until a
// restart, on SQLite the next records linked to a record that was gone,
// and after a restart verify said "intact" over the gap. Now the writer
// records the gap (how many, which time span), raises it (OnGap), and goes
// on from what the store kept, by itself; verify reports the gap.
func TestWriterRecoversFromALostTail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flush time.Duration
	}{{"batched", 5 * time.Millisecond}, {"synchronous", 0}} {
		for _, b := range lossyBackends() {
			t.Run(tc.name+"/"+b.name, func(t *testing.T) {
				testLostTail(t, b, tc.flush)
			})
		}
	}
}

func testLostTail(t *testing.T, b lossyBackend, flush time.Duration) {
	s, lose := b.open(t)
	var mu sync.Mutex
	var gaps []audit.Gap
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{
		FlushInterval: flush, MaxLag: time.Minute, RetryBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		OnGap: func(g audit.Gap) { mu.Lock(); gaps = append(gaps, g); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Close(ctx)
	})
	var written []audit.Record
	write := func(from, n int) {
		for i := from; i < from+n; i++ {
			r := record(i)
			r.Timestamp = r.Timestamp.Truncate(time.Microsecond)
			written = append(written, r)
			if err := w.Write(context.Background(), r); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
	}
	drained := func(what string) {
		deadline := time.Now().Add(20 * time.Second)
		for w.Pending() > 0 || w.Err() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d records still queued after 20 s: %v", what, w.Pending(), w.Err())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	write(0, 50)
	drained("before the loss")
	lose(10)
	write(50, 20)
	drained("after the loss (the writer must recover by itself)")
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	rep, err := audit.Verify(context.Background(), s, audit.VerifyOptions{})
	if !errors.Is(err, audit.ErrGap) || len(rep.Gaps) != 1 || rep.Verified != 60 {
		t.Fatalf("Verify = %+v, %v; want 60 records verified and one gap reported", rep, err)
	}
	g := rep.Gaps[0]
	if g.Lost != 10 || !g.From.Equal(written[40].Timestamp) || !g.To.Equal(written[49].Timestamp) || g.AfterSeq != 40 {
		t.Fatalf("gap %+v; want records 40 to 49 (%v to %v) after position 40", g, written[40].Timestamp, written[49].Timestamp)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gaps) != 1 || gaps[0].Lost != 10 {
		t.Fatalf("OnGap saw %+v; want the one gap", gaps)
	}
	t.Log(fmt.Sprint(err))
}
