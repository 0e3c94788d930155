package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestLinksLookedUpAfterRetentionDeleted: an answer's rows are read, then
// retention deletes the oldest of them before fillLinks looks their links
// up (a second statement). The deleted row is left out of the answer,
// not shown linked to the anchor retention just left after it (which
// would not verify); the row still held is linked to the anchor, which
// is the hash of the row before it. On both engines.
func TestLinksLookedUpAfterRetentionDeleted(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) *db
	}{
		{"sqlite", func(t *testing.T) *db {
			s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "a.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return &s.db
		}},
		{"postgres", func(t *testing.T) *db {
			s, err := OpenPostgres(t.Context(), pgtest.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return &s.db
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := tc.open(t)
			rs := compactRecords(t, audit.GenesisHash, 6)
			if err := s.AppendAudit(ctx, rs); err != nil { // one batch: rows 1–5 store no link
				t.Fatal(err)
			}
			// The answer as read: rows 3 and 4, links not yet looked up.
			var out []answerRow
			err := s.readAuditAnswer(ctx, `SELECT `+auditPlainSelect+` FROM audit WHERE seq IN (
				(SELECT seq FROM audit WHERE id = $1), (SELECT seq FROM audit WHERE id = $2)) ORDER BY seq DESC`,
				[]any{s.dialect.idArg(rs[4].ID), s.dialect.idArg(rs[3].ID)}, true, func(seq int64, r audit.Record) error {
					out = append(out, answerRow{seq: seq, chain: chainOf(t, s, seq), hash: []byte(r.Hash)})
					return nil
				})
			if err != nil || len(out) != 2 {
				t.Fatalf("read rows 4 and 3: %d rows, %v", len(out), err)
			}
			if n, err := s.PruneAudit(ctx, rs[3].Timestamp.Add(time.Microsecond)); err != nil || n != 4 {
				t.Fatalf("PruneAudit = %d, %v; want rows 0–3 deleted", n, err)
			}
			for i := range out {
				out[i].prev, out[i].linked = nil, false
			}
			if err := s.fillLinks(ctx, out, false); err != nil {
				t.Fatal(err)
			}
			if out[0].gone || hashText(out[0].prev) != rs[4].PrevHash {
				t.Errorf("row 4 (held): gone %v, linked to %q; want held, linked to %q", out[0].gone, hashText(out[0].prev), rs[4].PrevHash)
			}
			if !out[1].gone {
				t.Errorf("row 3 (deleted by retention): not marked gone, linked to %q (row 2's hash is %q)", hashText(out[1].prev), rs[3].PrevHash)
			}
		})
	}
}

// chainOf is the chain of the row at seq.
func chainOf(t *testing.T, s *db, seq int64) string {
	t.Helper()
	var c string
	if err := s.r.QueryRowContext(t.Context(), `SELECT chain_id FROM audit WHERE seq = $1`, seq).Scan(&c); err != nil {
		t.Fatal(err)
	}
	return c
}
