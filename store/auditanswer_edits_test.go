package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/meshguard/meshguard/audit"
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
					want := slices.Sorted(maps.Keys(exported))
					check := func(how string, got []audit.Record) {
						t.Helper()
						var ids []string
						for _, r := range got {
							ids = append(ids, r.ID)
							if e := exported[r.ID]; r.PrevHash != e.PrevHash || r.Hash != e.Hash {
								t.Errorf("%s: %s links to %.12s… (hash %.12s…); export: %.12s… (hash %.12s…)", how, r.ID, r.PrevHash, r.Hash, e.PrevHash, e.Hash)
							}
						}
						if slices.Sort(ids); !slices.Equal(ids, want) {
							t.Errorf("%s: records %v; export holds %v", how, ids, want)
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
				})
			}
		})
	}
}

// idOf is the arguments of an edit of record i's row.
func idOf(i int) func(rs []audit.Record, d dialect) []any {
	return func(rs []audit.Record, d dialect) []any { return []any{d.idArg(rs[i].ID)} }
}
