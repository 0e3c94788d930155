package store

import (
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// TestAuditInsertsFinalizedWithTheirConnection: when the pool replaces the
// writer connection (the driver reported it broken), the audit INSERTs
// prepared on it are finalized before it closes. SQLite closes a
// connection with statements left unfinalized only once they are, so a
// leaked one keeps its memory and its file open: counted here by the
// process's descriptors on the database file, which stay as many however
// often the connection is replaced. The trail keeps taking batches on the
// new connection, and verifies.
func TestAuditInsertsFinalizedWithTheirConnection(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd to count open files: %v", err)
	}
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	prev := audit.GenesisHash
	n := 0
	appendBatch := func() {
		t.Helper()
		// 511 rows: one INSERT of every chunk size, 256 down to 1.
		rs := make([]audit.Record, 511)
		for i := range rs {
			rs[i] = audit.Record{ID: fmt.Sprintf("aud_%06d", n), Timestamp: time.UnixMicro(1_700_000_000_000_000 + int64(n)).UTC(),
				AgentID: "agent_a", Action: "read:docs", Decision: "allow", Status: 200, Source: "ext_authz-grpc"}
			if err := rs[i].Seal(prev); err != nil {
				t.Fatal(err)
			}
			prev = rs[i].Hash
			n++
		}
		if err := s.AppendAudit(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
	}
	appendBatch()
	before := openFilesOn(t, path)
	if before == 0 {
		t.Fatalf("no descriptor open on %s", path)
	}
	for i := range 4 {
		conn, err := s.w.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var old any
		// ErrBadConn from the driver connection: the pool closes it.
		_ = conn.Raw(func(dc any) error { old = dc; return driver.ErrBadConn })
		_ = conn.Close()
		appendBatch()
		conn, err = s.w.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Raw(func(dc any) error {
			if dc == old {
				return fmt.Errorf("replacement %d: the pool kept the connection", i+1)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		_ = conn.Close()
		if got := openFilesOn(t, path); got != before {
			t.Fatalf("after %d replacements of the writer connection %d descriptors are open on the database, want %d as before", i+1, got, before)
		}
	}
	if got, err := audit.VerifyChains(t.Context(), s); err != nil || got != int64(n) {
		t.Fatalf("VerifyChains = %d, %v; want %d, nil", got, err, n)
	}
}

// openFilesOn counts this process's descriptors open on path.
func openFilesOn(t *testing.T, path string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}
