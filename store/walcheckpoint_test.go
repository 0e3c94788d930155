package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// TestCheckpointerCopiesTheWAL: with the writer's automatic checkpoint
// off, the checkpointer's timer is what moves committed pages from the WAL
// into the database file.
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s := openTest(t, path, WithCheckpointInterval(5*time.Millisecond))
	// waitRuns waits for a checkpoint that starts after the call.
	waitRuns := func() {
		t.Helper()
		from, _ := s.ckpt.status()
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := s.ckpt.status()
			if n >= from+2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d checkpoints in 30 s (last error %v)", n-from, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	waitRuns() // the migrations are in the file
	before := size()
	prev, err := s.LastAuditHash(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]audit.Record, 2000)
	for i := range rs {
		rs[i] = audit.Record{ID: fmt.Sprintf("aud_%06d", i), Timestamp: time.Now().UTC(), AgentID: "agent_a",
			Action: "read:x", Decision: "allow", Status: 200, Path: fmt.Sprintf("/docs/%d", i), Mode: "enforce"}
		if err := rs[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = rs[i].Hash
	}
	if err := s.AppendAudit(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	waitRuns()
	// 2000 records are well over 100 KB of rows; fewer than the 1000
	// pages at which SQLite's automatic checkpoint would have copied them.
	if grew := size() - before; grew < 100<<10 {
		t.Fatalf("the database file grew by %d bytes after 2000 records and a checkpoint; want them copied from the WAL", grew)
	}
}

func TestCheckpointIntervalMustBePositive(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		if s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "m.db"), WithCheckpointInterval(d)); err == nil {
			_ = s.Close()
			t.Errorf("WithCheckpointInterval(%v) accepted", d)
		}
	}
}

// TestWALStaysBounded: commits back to back never leave the writer a
// moment to restart a WAL a checkpoint has copied, so the log would grow
// without end; past its bound the checkpointer waits for the writer and
// restarts it.
func TestWALStaysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	// Only commits start checkpoints here, not the timer.
	s := openTest(t, path, WithCheckpointInterval(time.Hour))
	s.ckpt.restartFrames.Store(100) // 400 KB
	prev, err := s.LastAuditHash(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var most int64
	for b := range 200 {
		rs := make([]audit.Record, 400)
		for i := range rs {
			rs[i] = audit.Record{ID: fmt.Sprintf("aud_%03d_%03d", b, i), Timestamp: time.Now().UTC(), AgentID: "agent_a",
				Action: "read:x", Decision: "allow", Status: 200, Path: fmt.Sprintf("/docs/%d/%d", b, i), Mode: "enforce"}
			if err := rs[i].Seal(prev); err != nil {
				t.Fatal(err)
			}
			prev = rs[i].Hash
		}
		if err := s.AppendAudit(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			most = max(most, fi.Size())
		}
	}
	// 80,000 records are ≈ 40 MB of WAL frames when it never restarts;
	// between two checkpoints (2000 records) a few MB.
	if most > 16<<20 {
		t.Fatalf("the WAL grew to %d KB, restarted past 400 KB", most>>10)
	}
}
