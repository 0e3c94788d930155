package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
)

func openTest(t *testing.T, path string, opts ...Option) *SQLite {
	t.Helper()
	s, err := OpenSQLite(t.Context(), path, opts...)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenSetsPragmas(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "m.db"), WithBusyTimeout(1500*time.Millisecond))
	for _, pool := range []struct {
		name string
		q    func(string) (string, error)
	}{
		{"writer", func(p string) (v string, err error) { return v, s.w.QueryRowContext(t.Context(), "PRAGMA "+p).Scan(&v) }},
		{"reader", func(p string) (v string, err error) { return v, s.r.QueryRowContext(t.Context(), "PRAGMA "+p).Scan(&v) }},
	} {
		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"foreign_keys": "1",
			"synchronous":  "1", // NORMAL
			"busy_timeout": "1500",
		} {
			got, err := pool.q(pragma)
			if err != nil || got != want {
				t.Errorf("%s: PRAGMA %s = %q, %v; want %q", pool.name, pragma, got, err, want)
			}
		}
	}
	// The checkpointer checkpoints, not the writer's commits.
	var auto string
	if err := s.w.QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != "0" {
		t.Errorf("writer: PRAGMA wal_autocheckpoint = %q, %v; want 0", auto, err)
	}
	// Readers cannot write, whatever a future bug asks of them.
	if _, err := s.r.ExecContext(t.Context(), `DELETE FROM agents`); err == nil {
		t.Error("a reader connection accepted a write")
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	// Characters that mean something in a URI must stay part of the name.
	dir := filepath.Join(t.TempDir(), "data dir", "a?b#c%41")
	path := filepath.Join(dir, "meshguard.db")
	s := openTest(t, path)
	if _, err := s.CreateAgent(t.Context(), identity.Agent{Name: "a", Status: identity.StatusActive}); err != nil {
		t.Fatal(err)
	}
	// The database holds private keys: no access for group or others.
	for _, p := range []string{dir, path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want no group or other access", p, fi.Mode())
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "meshguard.db") {
			t.Errorf("unexpected file %q next to the database", e.Name())
		}
	}
}

func TestOpenRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		path string
		opts []Option
	}{
		"empty path":       {"", nil},
		"memory":           {":memory:", nil},
		"URI":              {"file:x.db?mode=ro", nil},
		"negative timeout": {filepath.Join(dir, "a.db"), []Option{WithBusyTimeout(-time.Second)}},
		"no readers":       {filepath.Join(dir, "b.db"), []Option{WithMaxReaders(0)}},
		"nil clock":        {filepath.Join(dir, "c.db"), []Option{WithClock(nil)}},
		"not a database":   {writeFile(t, dir, "junk.db", "this is not sqlite, just long enough to look like a header......"), nil},
		"directory":        {dir, nil},
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := OpenSQLite(t.Context(), tc.path, tc.opts...); err == nil {
				_ = s.Close()
				t.Fatalf("OpenSQLite(%q) succeeded", tc.path)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCloseTwice(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.GetAgent(context.Background(), "agent_x"); err == nil || errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("GetAgent after Close = %v, want a closed-database error", err)
	}
}

// TestConcurrentProcesses writes through two handles on one file, as the
// server and a CLI command do. Their writers are separate connections that
// contend for the file lock; busy_timeout and BEGIN IMMEDIATE must absorb
// that, so no caller ever sees SQLITE_BUSY.
func TestConcurrentProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	handles := []*SQLite{openTest(t, path), openTest(t, path)}
	var wg sync.WaitGroup
	for w := range 8 {
		s := handles[w%2]
		wg.Go(func() {
			for i := range 15 {
				a, err := s.CreateAgent(t.Context(), identity.Agent{
					Name: fmt.Sprintf("p%d-%d", w, i), TrustTier: trust.Trusted, Status: identity.StatusActive,
					Hosts: []string{fmt.Sprintf("p%d-%d.local", w, i)},
				})
				if err != nil {
					t.Errorf("CreateAgent: %v", err)
					return
				}
				a.Tags = []string{"seen"}
				if _, err := s.UpdateAgent(t.Context(), a); err != nil {
					t.Errorf("UpdateAgent: %v", err)
				}
				k := identity.StoredKey{KID: fmt.Sprintf("k%d-%d", w, i), Alg: identity.AlgEdDSA, PrivateDER: []byte{1}, CreatedAt: time.Now()}
				if err := s.RotateKey(t.Context(), k); err != nil {
					t.Errorf("RotateKey: %v", err)
				}
				if _, err := handles[(w+1)%2].GetAgent(t.Context(), a.ID); err != nil {
					t.Errorf("GetAgent through the other handle: %v", err)
				}
			}
		})
	}
	wg.Wait()
	all, err := handles[0].ListAgents(t.Context(), AgentFilter{Limit: MaxListLimit})
	if err != nil || len(all) != 8*15 {
		t.Fatalf("ListAgents = %d agents, %v; want %d", len(all), err, 8*15)
	}
	keys, err := handles[1].ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	current := 0
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			current++
		}
	}
	if len(keys) != 8*15 || current != 1 {
		t.Fatalf("%d keys, %d current; want %d and 1", len(keys), current, 8*15)
	}
}

func TestClock(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 999_999_999, time.FixedZone("X", -7200))
	s := openTest(t, filepath.Join(t.TempDir(), "m.db"), WithClock(func() time.Time { return now }))
	a, err := s.CreateAgent(t.Context(), identity.Agent{Name: "a", Status: identity.StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	want := now.UTC().Truncate(time.Microsecond)
	if !a.CreatedAt.Equal(want) || a.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt = %v, want %v", a.CreatedAt, want)
	}
	// A clock that stands still (or steps back) still moves updatedAt on.
	u, err := s.UpdateAgent(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.UpdatedAt.Sub(a.UpdatedAt); got != time.Microsecond {
		t.Fatalf("UpdatedAt moved by %v, want 1µs", got)
	}
	if err := s.RevokeAgent(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetAgent(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.UpdatedAt.Sub(u.UpdatedAt); got != time.Microsecond {
		t.Fatalf("RevokeAgent moved UpdatedAt by %v, want 1µs", got)
	}
}

// TestCorruptRowIsReported: a row edited outside MeshGuard is an error, not
// a silently defaulted agent and not "not found".
func TestCorruptRowIsReported(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "m.db"))
	a, err := s.CreateAgent(t.Context(), identity.Agent{Name: "a", Status: identity.StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(t.Context(), `UPDATE agents SET tags = 'not json' WHERE id = $1`, a.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetAgent(t.Context(), a.ID)
	if err == nil || errors.Is(err, identity.ErrNotFound) || !strings.Contains(err.Error(), "tags") {
		t.Fatalf("GetAgent of a corrupt row = %v, want a decode error naming tags", err)
	}
}

func TestUniqueViolationMapsToConflict(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "m.db"))
	a, err := s.CreateAgent(t.Context(), identity.Agent{Name: "a", Status: identity.StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.w.ExecContext(t.Context(), insertAgentSQL, "agent_other", a.Name, "verified", "[]", "[]", "[]", "{}", "active", 0, 0)
	if !isUniqueViolation(err) {
		t.Fatalf("duplicate name insert: %v, want a unique violation", err)
	}
	if err := conflictOr(err); !errors.Is(err, identity.ErrConflict) {
		t.Fatalf("conflictOr = %v, want ErrConflict", err)
	}
	if isUniqueViolation(errors.New("x")) || isUniqueViolation(nil) {
		t.Fatal("isUniqueViolation matched a non-SQLite error")
	}
	// The schema itself refuses a second current key.
	for _, kid := range []string{"k1", "k2"} {
		_, err = s.w.ExecContext(t.Context(), `INSERT INTO signing_keys (kid, alg, private_der, created_at) VALUES ($1, 'EdDSA', x'01', 1)`, kid)
	}
	if !isUniqueViolation(err) {
		t.Fatalf("second current key: %v, want a unique violation", err)
	}
}
