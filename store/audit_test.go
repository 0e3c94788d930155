package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

func sealed(t *testing.T, prev string, n int) []audit.Record {
	t.Helper()
	rs := make([]audit.Record, n)
	at := time.Date(2026, 3, 2, 10, 0, 0, 987654321, time.UTC)
	for i := range rs {
		rs[i] = audit.Record{ID: fmt.Sprintf("aud_%s_%d", prev[:6], i), Timestamp: at.Add(time.Duration(i) * time.Second),
			AgentID: "agent_a", Action: "read:x", Decision: "allow", Status: 200, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
			Chain: []string{"agent_a"}, Context: map[string]any{"k": 1.0}, Mode: "enforce"}
		if err := rs[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = rs[i].Hash
	}
	return rs
}

// auditBackend is a store under test with a way to edit its rows behind
// its back, as an attacker with database access (or a careless operator)
// would.
type auditBackend struct {
	name string
	open func(t *testing.T) (auditStore, func(query string, args ...any) error)
}

type auditStore interface {
	audit.Store
	audit.Chains
	ScanAudit(ctx context.Context, fn func(audit.Record) error) error
}

func auditBackends() []auditBackend {
	return []auditBackend{
		{"sqlite", func(t *testing.T) (auditStore, func(string, ...any) error) {
			path := filepath.Join(t.TempDir(), "mg.db")
			s, err := store.OpenSQLite(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			db := rawDB(t, path)
			return s, func(q string, args ...any) error { _, err := db.ExecContext(t.Context(), q, args...); return err }
		}},
		{"postgres", func(t *testing.T) (auditStore, func(string, ...any) error) {
			u := pgtest.NewDatabase(t)
			s, err := store.OpenPostgres(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s, rawPostgres(t, u)
		}},
	}
}

// TestAuditChain: records stored in batches read back in chain order and
// verify; a duplicate id is refused; an edit made directly in the database
// is named.
func TestAuditChain(t *testing.T) {
	for _, b := range auditBackends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s, exec := b.open(t)
			last, err := s.LastAuditHash(ctx)
			if err != nil || last != audit.GenesisHash {
				t.Fatalf("empty trail: %q %v", last, err)
			}
			if n, err := audit.VerifyChains(ctx, s); n != 0 || err != nil {
				t.Fatalf("verify empty trail: %d, %v", n, err)
			}
			first := sealed(t, last, 3)
			if err := s.AppendAudit(ctx, first); err != nil {
				t.Fatal(err)
			}
			if last, _ = s.LastAuditHash(ctx); last != first[2].Hash {
				t.Fatalf("last hash %q, want %q", last, first[2].Hash)
			}
			if err := s.AppendAudit(ctx, sealed(t, last, 2)); err != nil {
				t.Fatal(err)
			}
			verify := func() error {
				v := audit.NewVerifier(audit.GenesisHash)
				n := 0
				err := s.ScanAudit(ctx, func(r audit.Record) error { n++; return v.Next(&r) })
				if err == nil && n != 5 {
					return fmt.Errorf("%d records, want 5", n)
				}
				if err != nil {
					return err
				}
				if n, err := audit.VerifyChains(ctx, s); err != nil || n != 5 {
					return fmt.Errorf("VerifyChains: %d records, %w", n, err)
				}
				return nil
			}
			if err := verify(); err != nil {
				t.Fatalf("stored chain: %v", err)
			}
			// A duplicate id is refused, and nothing of the batch is stored.
			last, _ = s.LastAuditHash(ctx)
			dup := sealed(t, last, 1)
			dup[0].ID = first[0].ID
			if err := s.AppendAudit(ctx, dup); !errors.Is(err, identity.ErrConflict) {
				t.Fatalf("duplicate id: %v", err)
			}
			if err := verify(); err != nil {
				t.Fatalf("after a refused batch: %v", err)
			}
			// Edit a row behind MeshGuard's back: verify names it. (By
			// position: each engine stores the id in a form of its own.)
			if err := exec(`UPDATE audit SET reason = 'edited' WHERE seq = (SELECT seq FROM audit ORDER BY seq LIMIT 1 OFFSET 1)`); err != nil {
				t.Fatal(err)
			}
			var brk *audit.Break
			if err := verify(); !errors.As(err, &brk) || brk.ID != first[1].ID {
				t.Fatalf("edited row: %v", err)
			}
			if _, err := audit.VerifyChains(ctx, s); !errors.As(err, &brk) || brk.ID != first[1].ID {
				t.Fatalf("VerifyChains of an edited row: %v", err)
			}
		})
	}
}

// rawDB opens the database file directly, as an attacker with file access
// (or a careless operator) would, bypassing the store.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestAuditColumnsAreChecked: the columns filters, stats and retention read
// are part of the record the hash covers (the stored record leaves them
// out); editing them is reported by verify, and an edited time does not
// make retention delete records that are not due.
func TestAuditColumnsAreChecked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mg.db")
	s, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	rs := sealed(t, audit.GenesisHash, 4)
	if err := s.AppendAudit(ctx, rs); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if _, err := db.ExecContext(ctx, `UPDATE audit SET agent = agent + 1000 WHERE id = $1`, rs[1].ID); err != nil {
		t.Fatal(err)
	}
	var b *audit.Break
	if _, err := audit.VerifyChains(ctx, s); !errors.As(err, &b) || b.ID != rs[1].ID || !strings.Contains(b.Why, "edited") {
		t.Fatalf("edited column: %v", err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit SET ts = 0 WHERE id = $1`, rs[3].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneAudit(ctx, rs[0].Timestamp); err == nil || n != 0 {
		t.Fatalf("prune over an edited time: %d %v", n, err)
	}
}
