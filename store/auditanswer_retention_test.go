package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestPagesWhenRetentionCutsBetweenStatements: two PostgreSQL replicas;
// chain A's rows (one batch: its later rows store no link) lie between
// chain B's. A page reads its rows, then retention cuts chain A (a row of
// the page with it) before the page's links are looked up (a second
// statement). Paging on
// must still reach chain B's older record: the pages hold what a read
// after retention holds, which is what export lists. The interleaving is
// real: a second connection deletes chain A and leaves its anchor, as
// retention does, holding audit_anchors locked so the page's link lookup
// waits for it to commit.
func TestPagesWhenRetentionCutsBetweenStatements(t *testing.T) {
	for _, tc := range []struct {
		name   string
		filter AuditFilter
		moved  int // chain A's rows from this one on are moved past b1
		cut    int // retention deletes chain A up to this row
	}{
		// b0 b1 a0 a1 a2 at 1 5 2 3 4. Reads b1 and a2 (its link a second
		// lookup): a2 is the row past the page.
		{"pages of 1", AuditFilter{Limit: 1}, 3, 2},
		// Reads b1, a2 and a1 (a1's link a second lookup): a1 is. A larger
		// page links every row of chain A within itself.
		{"pages of 2", AuditFilter{Limit: 2}, 3, 2},
		// b0 a0 b1 a1 a2 at 1 2 5 6 7 (a batch split by another chain's
		// INSERT). Reads a2 and a1 (its seq - 1 is b1: a second lookup).
		{"filtered pages of 1", AuditFilter{Action: "*", Limit: 1}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			u := pgtest.NewDatabase(t)
			open := func(opts ...Option) *db { return openPostgresDB(t, u, opts...) }
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
			for _, r := range ra[tc.moved:] {
				if _, err := a.w.ExecContext(ctx, `UPDATE audit SET seq = DEFAULT WHERE id = $1`, a.dialect.idArg(r.ID)); err != nil {
					t.Fatal(err)
				}
			}

			tx, err := a.w.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback() })
			var cut int64
			if err := tx.QueryRowContext(ctx, `SELECT seq FROM audit WHERE id = $1`, a.dialect.idArg(ra[tc.cut].ID)).Scan(&cut); err != nil {
				t.Fatal(err)
			}
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`LOCK TABLE audit_anchors IN ACCESS EXCLUSIVE MODE`, nil},
				{`DELETE FROM audit WHERE chain_id = $1 AND seq <= $2`, []any{"replica-a", cut}},
				{`INSERT INTO audit_anchors (chain_id, last_seq, last_hash, last_ts, deleted, pruned_at) VALUES ($1, $2, $3, $4, $5, $4)`,
					[]any{"replica-a", cut, ra[tc.cut].Hash, ra[tc.cut].Timestamp.UnixMicro(), tc.cut + 1}},
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
				p, err := reader.QueryAudit(ctx, tc.filter)
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
			for next := first.page.Next; next != ""; {
				f := tc.filter
				f.Before = next
				p, err := reader.QueryAudit(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range p.Records {
					paged = append(paged, r.ID)
				}
				next = p.Next
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
				t.Errorf("the pages (the first read across retention) hold %v; export lists %v (chain A: %s–%s deleted, chain B: %s, %s)",
					paged, exported, ra[0].ID, ra[tc.cut].ID, rb[0].ID, rb[1].ID)
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
