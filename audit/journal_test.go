package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// lockedSQLite is a SQLite store and a connection that can hold its write
// lock, as another process would.
func lockedSQLite(t *testing.T) (s *store.SQLite, lock, unlock func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := store.OpenSQLite(context.Background(), path, store.WithBusyTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	locker, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	conn, err := locker.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	exec := func(q string) func() {
		return func() {
			if _, err := conn.ExecContext(context.Background(), q); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s, exec("BEGIN IMMEDIATE"), exec("ROLLBACK")
}

// writeUntilRefused writes records until the writer refuses one.
func writeUntilRefused(t *testing.T, w *audit.Writer, prefix string) (accepted []string, refusal error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		r := record(i)
		r.ID = fmt.Sprintf("aud_%s_%d", prefix, i)
		if err := w.Write(context.Background(), r); err != nil {
			return accepted, err
		}
		accepted = append(accepted, r.ID)
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatal("the writer never refused while its store was locked")
	return nil, nil
}

func storedIDs(t *testing.T, s *store.SQLite) map[string]bool {
	t.Helper()
	if _, err := audit.VerifyChains(context.Background(), s); err != nil {
		t.Fatalf("the chain: %v", err)
	}
	ids := map[string]bool{}
	if err := s.ScanAudit(context.Background(), func(r audit.Record) error { ids[r.ID] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestJournalKeepsWhatALaggingWriterCouldNotStore: the store is locked, the
// writer refuses, and it is stopped before the store is back (Close gives
// up, as a SIGTERM's deadline or a crash would). Before the journal, every
// record it had accepted was gone; now the next start stores them all, in
// one verified chain.
func TestJournalKeepsWhatALaggingWriterCouldNotStore(t *testing.T) {
	s, lock, unlock := lockedSQLite(t)
	path := filepath.Join(t.TempDir(), audit.JournalFile)
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{FlushInterval: 5 * time.Millisecond,
		MaxLag: 100 * time.Millisecond, WriteTimeout: 10 * time.Millisecond, Journal: audit.NewJournal(path, "")})
	if err != nil {
		t.Fatal(err)
	}
	var before []string
	for i := range 50 {
		r := record(i)
		r.ID = fmt.Sprintf("aud_before_%d", i)
		if err := w.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		before = append(before, r.ID)
	}
	lock()
	during, refusal := writeUntilRefused(t, w, "during")
	if !errors.Is(refusal, audit.ErrUnavailable) {
		t.Fatalf("refusal: %v", refusal)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); err == nil || !strings.Contains(err.Error(), "journaled") {
		t.Fatalf("Close with the store locked: %v, want the records journaled", err)
	}
	unlock()
	// The write the flusher had in flight when Close gave up may commit
	// now that the lock is gone (a process that exits takes it along):
	// replay after it, as the next process would.
	select {
	case <-w.Stopped():
	case <-time.After(20 * time.Second):
		t.Fatal("the flusher did not stop after the lock was released")
	}

	n, err := audit.ReplayJournal(context.Background(), path, func(context.Context, string) (audit.Store, func(), error) {
		return s, func() {}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records accepted before the lock, %d during it; %d replayed", len(before), len(during), n)
	ids := storedIDs(t, s)
	for _, id := range append(before, during...) {
		if !ids[id] {
			t.Errorf("record %s was accepted but is not stored", id)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the journal is still there after its replay: %v", err)
	}
	// A second replay finds nothing to do.
	if n, err := audit.ReplayJournal(context.Background(), path, nil, nil); n != 0 || err != nil {
		t.Errorf("second replay: %d, %v", n, err)
	}
}

// TestJournalReplay: what a start does with the journals a stop can leave.
func TestJournalReplay(t *testing.T) {
	// journaled returns a journal holding n records sealed after the
	// store's head, and those records.
	journaled := func(t *testing.T, s *store.SQLite, n int) (string, []audit.Record) {
		t.Helper()
		head, err := s.LastAuditHash(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rs := make([]audit.Record, n)
		for i := range rs {
			rs[i] = record(1000 + i)
			if err := rs[i].Seal(head); err != nil {
				t.Fatal(err)
			}
			head = rs[i].Hash
		}
		path := filepath.Join(t.TempDir(), audit.JournalFile)
		if err := audit.WriteJournalForTest(path, "", rs); err != nil {
			t.Fatal(err)
		}
		return path, rs
	}
	open := func(s *store.SQLite) func(context.Context, string) (audit.Store, func(), error) {
		return func(context.Context, string) (audit.Store, func(), error) { return s, func() {}, nil }
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, s *store.SQLite, path string, rs []audit.Record)
		stored  int // records of the journal stored after the replay
		wantErr error
	}{
		{name: "none stored yet", prepare: func(*testing.T, *store.SQLite, string, []audit.Record) {}, stored: 5},
		{name: "some stored before the crash", prepare: func(t *testing.T, s *store.SQLite, _ string, rs []audit.Record) {
			if err := s.AppendAudit(context.Background(), rs[:2]); err != nil {
				t.Fatal(err)
			}
		}, stored: 5},
		{name: "all stored before the crash", prepare: func(t *testing.T, s *store.SQLite, _ string, rs []audit.Record) {
			if err := s.AppendAudit(context.Background(), rs); err != nil {
				t.Fatal(err)
			}
		}, stored: 5},
		{name: "last line cut off mid-write", prepare: func(t *testing.T, _ *store.SQLite, path string, _ []audit.Record) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(`{"prevHash":"00`); err != nil {
				t.Fatal(err)
			}
		}, stored: 5},
		{name: "records that no longer link (another writer went on)", prepare: func(t *testing.T, s *store.SQLite, _ string, _ []audit.Record) {
			other := record(1)
			if err := other.Seal(audit.GenesisHash); err != nil {
				t.Fatal(err)
			}
			if err := s.AppendAudit(context.Background(), []audit.Record{other}); err != nil {
				t.Fatal(err)
			}
		}, stored: 0, wantErr: audit.ErrJournal},
		{name: "an edited line", prepare: func(t *testing.T, _ *store.SQLite, path string, _ []audit.Record) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(b), `read:x`, `read:y`, 1)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, stored: 0, wantErr: audit.ErrJournal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			path, rs := journaled(t, s, 5)
			tt.prepare(t, s, path, rs)
			_, err = audit.ReplayJournal(context.Background(), path, open(s), nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("replay: %v, want %v", err, tt.wantErr)
			}
			ids := storedIDs(t, s)
			got := 0
			for _, r := range rs {
				if ids[r.ID] {
					got++
				}
			}
			if got != tt.stored {
				t.Errorf("%d of the journal's records stored, want %d", got, tt.stored)
			}
		})
	}
}

// TestJournalThatCannotBeWrittenRefuses: a failing writer whose journal
// cannot be written either (a full or read-only disk) refuses decisions
// and says the journal is why.
func TestJournalThatCannotBeWrittenRefuses(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "audit.db"), store.WithBusyTimeout(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	locker, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	conn, err := locker.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	path := filepath.Join(dir, "missing", audit.JournalFile) // its directory does not exist
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{FlushInterval: 5 * time.Millisecond,
		MaxLag: time.Hour, Journal: audit.NewJournal(path, "")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.ExecContext(context.Background(), "ROLLBACK") }) // before Close: cleanups run last first
	var refusal error
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; !errors.Is(refusal, audit.ErrJournal) && time.Now().Before(deadline); i++ {
		refusal = w.Write(context.Background(), record(i))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(refusal, audit.ErrUnavailable) || !errors.Is(refusal, audit.ErrJournal) {
		t.Fatalf("refusal: %v, want ErrUnavailable for the journal", refusal)
	}
}
