package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// refusingBackend is a real store made to refuse one kind of record as
// data, and what that record looks like.
type refusingBackend struct {
	name string
	open func(t *testing.T) outageStore
	bad  func(r *audit.Record) // makes r one the store refuses
	// code is in the store's refusal (SQLSTATE or SQLite's message).
	code string
}

func refusingBackends() []refusingBackend {
	pg := func(t *testing.T, ddl string) outageStore {
		u := pgtest.NewDatabase(t)
		s, err := store.OpenPostgres(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if ddl != "" {
			raw, err := sql.Open("pgx", u)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Exec(ddl); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	return []refusingBackend{
		{"sqlite trigger", func(t *testing.T) outageStore {
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
			defer raw.Close()
			// SQLite cannot add a CHECK to a table; a trigger refuses the
			// same way (SQLITE_CONSTRAINT_TRIGGER).
			if _, err := raw.Exec(`CREATE TRIGGER test_refuse BEFORE INSERT ON audit WHEN NEW.action = 'refuse:me'
				BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
				t.Fatal(err)
			}
			return s
		}, func(r *audit.Record) { r.Action = "refuse:me" }, "refused by the test"},
		{"postgres check constraint", func(t *testing.T) outageStore {
			return pg(t, `ALTER TABLE audit ADD CONSTRAINT test_refuse CHECK (action <> 'refuse:me')`)
		}, func(r *audit.Record) { r.Action = "refuse:me" }, "23514"},
		{"postgres NUL byte", func(t *testing.T) outageStore {
			return pg(t, "")
		}, func(r *audit.Record) { r.Reason = "nul\x00byte" }, "22021"},
	}
}

// TestWriterDeadLettersARecordTheStoreRefuses: the store refuses one
// record of a batch as data. Before the fix the writer retried the batch
// forever: no record of it, nor any after it, was ever stored, and once
// MaxLag passed every decision was refused. Now the batch is written again
// one record at a time, the good records are stored and chained, the bad
// one is dead-lettered after a bounded number of attempts (OnDeadLetter
// fires), decisions go on, and Verify reports the dead letter.
func TestWriterDeadLettersARecordTheStoreRefuses(t *testing.T) {
	for _, b := range refusingBackends() {
		for _, mode := range []struct {
			name  string
			flush time.Duration
		}{{"batched", time.Hour}, {"sync", 0}} {
			t.Run(b.name+"/"+mode.name, func(t *testing.T) {
				s := b.open(t)
				var mu sync.Mutex
				var dead []audit.DeadLetter
				const batch = 10
				w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{
					// A full batch is written at once; nothing else is,
					// so the bad record is in a batch with good ones.
					FlushInterval: mode.flush, MaxLag: 2 * time.Hour, MaxBatch: batch,
					RetryBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
					OnDeadLetter: func(d audit.DeadLetter) { mu.Lock(); dead = append(dead, d); mu.Unlock() },
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					_ = w.Close(ctx)
				})
				badID := ""
				var want []string
				for i := range batch {
					r := record(i)
					if i == 4 {
						b.bad(&r)
						badID = r.ID
					} else {
						want = append(want, r.ID)
					}
					if err := w.Write(context.Background(), r); err != nil {
						t.Fatalf("write %d: %v", i, err)
					}
				}
				deadline := time.Now().Add(20 * time.Second)
				for {
					mu.Lock()
					n := len(dead)
					mu.Unlock()
					if n > 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the refused record was not dead-lettered in 20 s (%d records still queued: the batch is retried forever)", w.Pending())
					}
					time.Sleep(2 * time.Millisecond)
				}
				// Decisions go on after it, onto the same chain.
				for i := batch; i < batch+5; i++ {
					r := record(i)
					want = append(want, r.ID)
					if err := w.Write(context.Background(), r); err != nil {
						t.Fatalf("write after the dead letter: %v", err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if err := w.Close(ctx); err != nil {
					t.Fatal(err)
				}

				mu.Lock()
				defer mu.Unlock()
				if len(dead) != 1 || dead[0].ID != badID || dead[0].Attempts != audit.DefaultRefusedAttempts || !strings.Contains(dead[0].Error, b.code) {
					t.Fatalf("dead letters %+v; want one for %s after %d attempts, refused with %s", dead, badID, audit.DefaultRefusedAttempts, b.code)
				}
				var kept audit.Record
				if err := json.Unmarshal([]byte(dead[0].Record), &kept); err != nil || kept.ID != badID {
					t.Fatalf("the dead letter's record %q does not hold the record's canonical JSON: %v", dead[0].Record, err)
				}

				rep, verr := audit.Verify(context.Background(), s, audit.VerifyOptions{})
				var br *audit.Break
				if !errors.Is(verr, audit.ErrDeadLettered) || errors.As(verr, &br) {
					t.Fatalf("verify: %v; want the dead letter reported and the chain unbroken", verr)
				}
				if d := rep.DeadLetters; d == nil || d.Count != 1 || len(d.IDs) != 1 || d.IDs[0] != badID || !d.From.Equal(d.To) {
					t.Fatalf("verify's dead letters: %+v; want %s", rep.DeadLetters, badID)
				}
				if rep.Verified != int64(len(want)) {
					t.Fatalf("verified %d records, want the %d good ones", rep.Verified, len(want))
				}
				var got []string
				heads, err := s.AuditChains(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range heads {
					if err := s.ScanAuditChainAfter(context.Background(), h.ID, 0, func(_ int64, r audit.Record) error {
						got = append(got, r.ID)
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("stored %v; want the good records in order %v", got, want)
				}
				t.Logf("verify: %v", verr)
			})
		}
	}
}

// TestDeadLetterWhileJournaling: the store refuses a record as data while
// the writer lags, so the queue — the refused record with it — is already
// in the journal when the record is dead-lettered and the records after it
// are re-sealed. The journal must not keep the dead letter or the old
// hashes: once everything else is stored it is emptied, and a start after
// a crash replays nothing the store would refuse again or that no longer
// fits the chain.
func TestDeadLetterWhileJournaling(t *testing.T) {
	b := refusingBackends()[0] // SQLite
	s := b.open(t)
	path := filepath.Join(t.TempDir(), audit.JournalFile)
	var mu sync.Mutex
	dead := 0
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{
		FlushInterval: time.Millisecond, MaxBatch: 10, MaxLag: 4 * time.Millisecond,
		RetryBackoff: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Journal:      audit.NewJournal(path, ""),
		OnDeadLetter: func(audit.DeadLetter) { mu.Lock(); dead++; mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r := record(i)
		if i == 4 {
			b.bad(&r)
		}
		if err := w.Write(context.Background(), r); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := dead
		mu.Unlock()
		if n > 0 && w.Pending() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %d, %d records still queued", n, w.Pending())
		}
		time.Sleep(2 * time.Millisecond)
	}
	// A crash now: no Close. What a start would replay must fit.
	n, err := audit.ReplayJournal(context.Background(), path, func(context.Context, string) (audit.Store, func(), error) {
		return s, func() {}, nil
	}, nil)
	if err != nil || n != 0 {
		t.Fatalf("replaying the journal after the dead letter: %d records, %v; want nothing to replay", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
