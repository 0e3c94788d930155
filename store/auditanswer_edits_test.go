package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestAnswersAgreeWithExportAfterHandEdits: rows edited or deleted by
// hand around a row that stores no link (no retention, no anchor), on
// both engines. Every answer — a record by id, a filtered page (links
// looked up: on PostgreSQL the seq - 1 probe, then fillLinks), pages of
// every size with no filter (links from the page) — shows each record
// held, and only those, with the link and hash export shows (export and
// verification read the chain in order), so an edit an answer shows is
// one verification reports, and none is hidden or made up.
func TestAnswersAgreeWithExportAfterHandEdits(t *testing.T) {
	forged := bytes.Repeat([]byte{0xab}, 32)
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range []struct {
				name, sql string
				args      func(rs []audit.Record, d dialect) []any
			}{
				// Rows 1–3 and 5–7 store no link (an empty prev_hash; the
				// column is NOT NULL); 4 stores its own.
				{"row before deleted", `DELETE FROM audit WHERE id = $1`, idOf(5)},
				{"first row deleted", `DELETE FROM audit WHERE id = $1`, idOf(0)},
				{"a batch's first row deleted", `DELETE FROM audit WHERE id = $1`, idOf(4)},
				{"first rows deleted, no anchor", `DELETE FROM audit WHERE seq <= (SELECT seq FROM audit WHERE id = $1)`, idOf(2)},
				{"row before's hash edited", `UPDATE audit SET hash = $2 WHERE id = $1`, func(rs []audit.Record, d dialect) []any {
					return []any{d.idArg(rs[5].ID), forged}
				}},
				{"stored link emptied", `UPDATE audit SET prev_hash = $2 WHERE id = $1`, func(rs []audit.Record, d dialect) []any {
					return []any{d.idArg(rs[4].ID), []byte{}}
				}},
				{"left-out link forged", `UPDATE audit SET prev_hash = $2 WHERE id = $1`, func(rs []audit.Record, d dialect) []any {
					return []any{d.idArg(rs[6].ID), forged}
				}},
				{"row before moved to the end", `UPDATE audit SET seq = (SELECT MAX(seq) + 1 FROM audit) WHERE id = $1`, idOf(5)},
			} {
				t.Run(tc.name, func(t *testing.T) {
					s, raw := b.open(t)
					ctx := t.Context()
					rs := compactRecords(t, audit.GenesisHash, 8)
					for _, batch := range [][]audit.Record{rs[:4], rs[4:]} {
						if err := s.AppendAudit(ctx, batch); err != nil {
							t.Fatal(err)
						}
					}
					q := tc.sql
					if s.dialect.name != "sqlite" {
						q = replaceAll(q, "seq = (SELECT MAX(seq) + 1 FROM audit)", "seq = DEFAULT")
					}
					if _, err := raw.ExecContext(ctx, q, tc.args(rs, s.dialect)...); err != nil {
						t.Fatal(err)
					}

					exported := map[string]audit.Record{}
					if err := s.ScanAuditFiltered(ctx, AuditFilter{}, func(r audit.Record, _ string) error {
						exported[r.ID] = r
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					checkAnswers(t, s, rs, exported)
				})
			}
		})
	}
}

// idOf is the arguments of an edit of record i's row.
func idOf(i int) func(rs []audit.Record, d dialect) []any {
	return func(rs []audit.Record, d dialect) []any { return []any{d.idArg(rs[i].ID)} }
}

// checkAnswers reads each of ids by id, then every filtered page and
// every page with no filter: each holds exactly want's records, each with
// want's link and hash.
func checkAnswers(t *testing.T, s *db, rs []audit.Record, want map[string]audit.Record) {
	t.Helper()
	ctx := t.Context()
	ids := slices.Sorted(maps.Keys(want))
	check := func(how string, got []audit.Record) {
		t.Helper()
		var gotIDs []string
		for _, r := range got {
			gotIDs = append(gotIDs, r.ID)
			if w := want[r.ID]; r.PrevHash != w.PrevHash || r.Hash != w.Hash {
				t.Errorf("%s: %s links to %.12s… (hash %.12s…); want %.12s… (hash %.12s…)", how, r.ID, r.PrevHash, r.Hash, w.PrevHash, w.Hash)
			}
		}
		if slices.Sort(gotIDs); !slices.Equal(gotIDs, ids) {
			t.Errorf("%s: records %v; want %v", how, gotIDs, ids)
		}
	}
	var byID []audit.Record
	for _, r := range rs {
		got, ok, err := s.AuditRecord(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			byID = append(byID, got)
		}
	}
	check("by id", byID)
	for _, f := range []AuditFilter{
		{Action: "*", Limit: 100}, // no condition, but links looked up
		{Action: "*", Limit: 1},
		{Limit: 100}, {Limit: 3}, {Limit: 2}, {Limit: 1},
	} {
		var got []audit.Record
		for {
			p, err := s.QueryAudit(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Records...)
			if p.Next == "" {
				break
			}
			f.Before = p.Next
		}
		check(fmt.Sprintf("pages (action %q, limit %d)", f.Action, f.Limit), got)
	}
}

// TestAnswersWhenABatchIsSplitByAnotherChain: on PostgreSQL two replicas'
// INSERTs draw positions from one sequence, so a batch's rows that store
// no link can lie after another chain's row (a chain's previous row is
// then not at seq - 1, and seq - 1 is another chain's). The layout is
// made by moving chain A's last rows past chain B's, in order, as such an
// interleaving leaves them. Every answer shows each record as sealed and
// the chains verify; then retention cuts chain A just before the split
// (its next row's link is the anchor), and again after a cut of both.
func TestAnswersWhenABatchIsSplitByAnotherChain(t *testing.T) {
	ctx := t.Context()
	u := pgtest.NewDatabase(t)
	open := func(opts ...Option) *db { return openPostgresDB(t, u, opts...) }
	a, b, reader := open(WithAuditChain("replica-a")), open(WithAuditChain("replica-b")), open()
	ra, rb := chainRecords(t, 0, 5), chainRecords(t, 1, 2)
	for _, w := range []struct {
		s  *db
		rs []audit.Record
	}{{a, ra}, {b, rb}} {
		if err := w.s.AppendAudit(ctx, w.rs); err != nil {
			t.Fatal(err)
		}
	}
	// a0–a4 at 1–5, b0 b1 at 6 7; then a2 a3 a4 at 8 9 10, so b1 is at
	// a2's seq - 1, and a gap at 3–5.
	for _, r := range ra[2:] {
		if _, err := a.w.ExecContext(ctx, `UPDATE audit SET seq = DEFAULT WHERE id = $1`, a.dialect.idArg(r.ID)); err != nil {
			t.Fatal(err)
		}
	}
	all := slices.Concat(ra, rb)
	sealed := func(rs ...[]audit.Record) map[string]audit.Record {
		m := map[string]audit.Record{}
		for _, r := range slices.Concat(rs...) {
			m[r.ID] = r
		}
		return m
	}
	verify := func() {
		t.Helper()
		if _, err := audit.VerifyChains(ctx, reader); err != nil {
			t.Fatalf("verify: %v", err)
		}
	}
	verify()
	checkAnswers(t, reader, all, sealed(ra, rb))

	// Retention: chain A up to a1 (a2's link is now the anchor; chain B's
	// rows, older than a2 by position, are 5 s newer, so kept); then A up
	// to a3 and B's b0.
	if n, err := reader.PruneAudit(ctx, ra[1].Timestamp.Add(time.Microsecond)); err != nil || n != 2 {
		t.Fatalf("PruneAudit = %d, %v; want a0 and a1 deleted", n, err)
	}
	verify()
	checkAnswers(t, reader, all, sealed(ra[2:], rb))
	if n, err := reader.PruneAudit(ctx, rb[0].Timestamp.Add(time.Microsecond)); err != nil || n != 3 {
		t.Fatalf("PruneAudit = %d, %v; want a2, a3 and b0 deleted", n, err)
	}
	verify()
	checkAnswers(t, reader, all, sealed(ra[4:], rb[1:]))
}
