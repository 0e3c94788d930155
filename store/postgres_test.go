package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// rawPostgres connects to the database directly, bypassing the store.
func rawPostgres(t *testing.T, url string) func(query string, args ...any) error {
	t.Helper()
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return func(q string, args ...any) error { _, err := c.Exec(t.Context(), q, args...); return err }
}

func openPostgres(t *testing.T, url string, opts ...store.Option) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(t.Context(), url, opts...)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestPostgresReplicasMigrateOnce: replicas starting together on an empty
// database all open it, and each migration is applied once.
func TestPostgresReplicasMigrateOnce(t *testing.T) {
	u := pgtest.NewDatabase(t)
	const replicas = 6
	var wg sync.WaitGroup
	stores := make([]*store.Postgres, replicas)
	for i := range replicas {
		wg.Go(func() {
			s, err := store.OpenPostgres(t.Context(), u)
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
	}
	if t.Failed() {
		return
	}
	var n, distinct int
	c, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(t.Context(), `SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != distinct || n < 5 {
		t.Fatalf("schema_migrations: %d rows, %d versions", n, distinct)
	}
}

// TestPostgresAuditReplicas: replicas append to one database at once, each
// through its own writer; every chain verifies and nothing is lost.
func TestPostgresAuditReplicas(t *testing.T) {
	u := pgtest.NewDatabase(t)
	const replicas, perWriter = 3, 500
	var wg sync.WaitGroup
	writers := make([]*audit.Writer, replicas)
	for i := range writers {
		w, err := audit.NewWriter(t.Context(), openPostgres(t, u), audit.WriterConfig{FlushInterval: 2 * time.Millisecond, MaxBatch: 64})
		if err != nil {
			t.Fatal(err)
		}
		writers[i] = w
		for g := range 2 {
			wg.Go(func() {
				for j := range perWriter / 2 {
					r := audit.Record{ID: fmt.Sprintf("aud_%d_%d_%d", i, g, j), AgentID: "agent_a", Action: "read:x", Decision: "allow"}
					if err := w.Write(t.Context(), r); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for _, w := range writers {
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	reader := openPostgres(t, u)
	heads, err := reader.AuditChains(t.Context())
	if err != nil || len(heads) != replicas {
		t.Fatalf("AuditChains = %v, %v; want %d chains", heads, err, replicas)
	}
	n, err := audit.VerifyChains(t.Context(), reader)
	if err != nil || n != replicas*perWriter {
		t.Fatalf("VerifyChains: %d records, %v; want %d", n, err, replicas*perWriter)
	}
}

// TestPostgresAuditChainConflicts: a batch that does not link to its
// chain's head is refused whole, so two writers on one chain name (a
// misconfigured WithAuditChain) cannot fork it; records cut from a chain's
// end are reported.
func TestPostgresAuditChainConflicts(t *testing.T) {
	u := pgtest.NewDatabase(t)
	a := openPostgres(t, u, store.WithAuditChain("replica-a"))
	b := openPostgres(t, u, store.WithAuditChain("replica-a"))
	if a.AuditChain() != "replica-a" {
		t.Fatalf("AuditChain = %q", a.AuditChain())
	}
	first := sealed(t, audit.GenesisHash, 3)
	if err := a.AppendAudit(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		batch []audit.Record
	}{
		{"stale head", sealed(t, first[0].Hash, 2)},
		{"second genesis", sealed(t, "1"+audit.GenesisHash[1:], 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.AppendAudit(t.Context(), tc.batch); !errors.Is(err, identity.ErrConflict) {
				t.Fatalf("AppendAudit = %v, want ErrConflict", err)
			}
		})
	}
	// The same batch again — a retry after a commit whose answer was lost
	// — is already there: accepted, not stored twice.
	if err := a.AppendAudit(t.Context(), first); err != nil {
		t.Fatalf("a stored batch again: %v", err)
	}
	// A fresh chain must start at genesis.
	c := openPostgres(t, u, store.WithAuditChain("replica-c"))
	if err := c.AppendAudit(t.Context(), sealed(t, first[2].Hash, 1)); !errors.Is(err, identity.ErrConflict) {
		t.Fatalf("a new chain not starting at genesis: %v", err)
	}
	// The handle sharing the name continues from the head, as a restarted
	// replica does.
	last, err := b.LastAuditHash(t.Context())
	if err != nil || last != first[2].Hash {
		t.Fatalf("LastAuditHash = %q, %v", last, err)
	}
	if err := b.AppendAudit(t.Context(), sealed(t, last, 2)); err != nil {
		t.Fatal(err)
	}
	if n, err := audit.VerifyChains(t.Context(), a); err != nil || n != 5 {
		t.Fatalf("VerifyChains = %d, %v", n, err)
	}
	// Cut the chain's last record: the head says more.
	exec := rawPostgres(t, u)
	if err := exec(`DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)`); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyChains(t.Context(), a); !errors.Is(err, audit.ErrBroken) || !strings.Contains(err.Error(), "replica-a") {
		t.Fatalf("VerifyChains of a cut chain = %v", err)
	}
}

// TestPostgresLinkStaysInItsChain: a row that stores no link reads the
// hash of the row before it in its own chain, or its chain's retention
// anchor, never the row before it of another chain. Chain b's first
// record is pruned; b's second (linked by position) must read b's anchor,
// though chain a's last row is just before it by position (a written
// first) or in (chain_id, seq) order (either way).
func TestPostgresLinkStaysInItsChain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		aFirst bool
	}{
		{"other chain just before by position", true},
		{"other chain just before in the chain index", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := pgtest.NewDatabase(t)
			ctx := t.Context()
			old, recent := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
			chain := func(name string, firstAt time.Time) []audit.Record {
				rs := make([]audit.Record, 3)
				prev := audit.GenesisHash
				for i := range rs {
					at := recent.Add(time.Duration(i) * time.Second)
					if i == 0 {
						at = firstAt
					}
					rs[i] = audit.Record{ID: fmt.Sprintf("aud_%s_%d", name, i), Timestamp: at, AgentID: "agent_" + name, Action: "read:x", Decision: "allow", Status: 200}
					if err := rs[i].Seal(prev); err != nil {
						t.Fatal(err)
					}
					prev = rs[i].Hash
				}
				if err := openPostgres(t, u, store.WithAuditChain("replica-"+name)).AppendAudit(ctx, rs); err != nil {
					t.Fatal(err)
				}
				return rs
			}
			var a, b []audit.Record
			if tc.aFirst {
				a = chain("a", recent)
				b = chain("b", old)
			} else {
				b = chain("b", old)
				a = chain("a", recent)
			}
			reader := openPostgres(t, u)
			if n, err := reader.PruneAudit(ctx, old.Add(time.Second)); err != nil || n != 1 {
				t.Fatalf("PruneAudit = %d, %v; want b's first record pruned", n, err)
			}
			r, ok, err := reader.AuditRecord(ctx, b[1].ID)
			if err != nil || !ok || r.Unreadable != "" || r.PrevHash != b[0].Hash {
				t.Fatalf("AuditRecord(%s) = prev %.12s…, unreadable %q, %v, %v; want prev %.12s… (b's anchor; a's last is %.12s…)",
					b[1].ID, r.PrevHash, r.Unreadable, ok, err, b[0].Hash, a[2].Hash)
			}
			page, err := reader.QueryAudit(ctx, store.AuditFilter{AgentID: "agent_b"})
			if err != nil || len(page.Records) != 2 || page.Records[1].PrevHash != b[0].Hash {
				t.Fatalf("QueryAudit(agent_b) = %+v, %v; want b's two records, the older linked to b's anchor", page.Records, err)
			}
			if n, err := audit.VerifyChains(ctx, reader); err != nil || n != 5 {
				t.Fatalf("VerifyChains = %d, %v; want 5 records", n, err)
			}
		})
	}
}
