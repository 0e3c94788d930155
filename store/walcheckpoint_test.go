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

// TestWALStaysBounded: commits back to back can leave the writer no moment
// to restart a WAL a checkpoint has copied, so past its bound the
// checkpointer restarts it itself. Whether a checkpoint overlaps a commit
// is a matter of timing, which a test must not rest on, so the test lets
// each checkpoint a commit starts finish before the next batch and checks
// the two things that do not depend on it: a WAL past the bound is
// restarted (restarts counted), and the WAL stays within what one
// checkpoint's worth of records takes.
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
	written := 0
	for b := range 50 {
		rs := make([]audit.Record, 400)
		for i := range rs {
			rs[i] = audit.Record{ID: fmt.Sprintf("aud_%03d_%03d", b, i), Timestamp: time.Now().UTC(), AgentID: "agent_a",
				Action: "read:x", Decision: "allow", Status: 200, Path: fmt.Sprintf("/docs/%d/%d", b, i), Mode: "enforce"}
			if err := rs[i].Seal(prev); err != nil {
				t.Fatal(err)
			}
			prev = rs[i].Hash
		}
		from, _ := s.ckpt.status()
		if err := s.AppendAudit(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
		if written += len(rs); written >= walCheckpointRecords {
			// This commit kicked a checkpoint: wait for it.
			written = 0
			deadline := time.Now().Add(30 * time.Second)
			for n, err := s.ckpt.status(); n == from; n, err = s.ckpt.status() {
				if time.Now().After(deadline) {
					t.Fatalf("no checkpoint in 30 s after %d records (last error %v)", walCheckpointRecords, err)
				}
				time.Sleep(time.Millisecond)
			}
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			most = max(most, fi.Size())
		}
	}
	if s.ckpt.restarted() == 0 {
		t.Fatal("the WAL went past its bound and no checkpoint restarted it")
	}
	// 20,000 records are ≈ 10 MB of WAL frames when it never restarts;
	// one checkpoint's worth (2000 records and a batch) ≈ 1.5 MB.
	if most > 4<<20 {
		t.Fatalf("the WAL grew to %d KB between checkpoints of 2000 records", most>>10)
	}
}
