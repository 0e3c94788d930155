package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestPagesWhenRetentionCutsBetweenStatements: two PostgreSQL replicas;
// chain A's rows (one batch: its later rows store no link) lie between
// chain B's. A page reads its rows, then retention cuts all of chain A
// before the page's links are looked up (a second statement). Paging on
// must still reach chain B's older record: the pages hold what a read
// after retention holds, which is what export lists. The interleaving is
// real: a second connection deletes chain A and leaves its anchor, as
// retention does, holding audit_anchors locked so the page's link lookup
// waits for it to commit.
func TestPagesWhenRetentionCutsBetweenStatements(t *testing.T) {
	// Limit 1 reads b1 and a2 (its link a second lookup): a2 is the row
	// past the page. Limit 2 reads b1, a2 and a1 (a1's link a second
	// lookup): a1 is. A larger page links every row of chain A within
	// itself, no second statement.
	for _, limit := range []int{1, 2} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			ctx := t.Context()
			u := pgtest.NewDatabase(t)
			open := func(opts ...Option) *db {
				s, err := OpenPostgres(ctx, u, opts...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return &s.db
			}
			a, b, reader := open(WithAuditChain("replica-a")), open(WithAuditChain("replica-b")), open()
			ra, rb := chainRecords(t, 0, 3), chainRecords(t, 1, 2)
			for _, w := range []struct {
				s  *db
				rs []audit.Record
			}{{b, rb[:1]}, {a, ra}, {b, rb[1:]}} { // seq 1: b0; 2–4: a0–a2; 5: b1
				if err := w.s.AppendAudit(ctx, w.rs); err != nil {
					t.Fatal(err)
				}
			}

			tx, err := a.w.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback() })
			var cut int64
			if err := tx.QueryRowContext(ctx, `SELECT seq FROM audit WHERE id = $1`, a.dialect.idArg(ra[2].ID)).Scan(&cut); err != nil {
				t.Fatal(err)
			}
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`LOCK TABLE audit_anchors IN ACCESS EXCLUSIVE MODE`, nil},
				{`DELETE FROM audit WHERE chain_id = $1 AND seq <= $2`, []any{"replica-a", cut}},
				{`INSERT INTO audit_anchors (chain_id, last_seq, last_hash, last_ts, deleted, pruned_at) VALUES ($1, $2, $3, $4, 3, $4)`,
					[]any{"replica-a", cut, ra[2].Hash, ra[2].Timestamp.UnixMicro()}},
			} {
				if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
					t.Fatal(err)
				}
			}

			type answer struct {
				page AuditPage
				err  error
			}
			got := make(chan answer, 1)
			go func() {
				p, err := reader.QueryAudit(ctx, AuditFilter{Limit: limit})
				got <- answer{p, err}
			}()
			// The page's rows are read (audit, not locked) and its link
			// lookup waits for audit_anchors.
			waitForLockWaiter(ctx, t, a, "audit_anchors")
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			first := <-got
			if first.err != nil {
				t.Fatal(first.err)
			}

			var paged []string
			for _, r := range first.page.Records {
				paged = append(paged, r.ID)
			}
			for f := (AuditFilter{Limit: limit, Before: first.page.Next}); f.Before != ""; {
				p, err := reader.QueryAudit(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range p.Records {
					paged = append(paged, r.ID)
				}
				f.Before = p.Next
			}
			var exported []string
			if err := reader.ScanAuditFiltered(ctx, AuditFilter{}, func(r audit.Record, _ string) error {
				exported = append(exported, r.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			slices.Reverse(exported)
			if !slices.Equal(paged, exported) {
				t.Errorf("pages of %d (the first read across retention) hold %v; export lists %v (chain A: %s–%s deleted, chain B: %s, %s)",
					limit, paged, exported, ra[0].ID, ra[2].ID, rb[0].ID, rb[1].ID)
			}
		})
	}
}

// waitForLockWaiter returns once some session waits for a lock on table.
func waitForLockWaiter(ctx context.Context, t *testing.T, s *db, table string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE c.relname = $1 AND NOT l.granted`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session waited for a lock on %s in 30 s", table)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
