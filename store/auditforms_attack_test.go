package store

import (
	"errors"
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// TestStoredFormEditIsReported: on SQLite every id, trace id, decision and
// source has one stored form (auditcols.go). A row edited into another
// form of the same text — the engine's id or trace id as text instead of
// bytes, a client's 13-byte hex id as bytes, a known source as its name —
// reads back as the record that was sealed, yet lookups by id or trace id
// no longer find it and stats count its source twice. Verification must
// name it.
func TestStoredFormEditIsReported(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int // a record of mixedRecords whose row is edited
		edit string
	}{
		{"engine id kept as its text", 0, `UPDATE audit SET id = 'aud_' || lower(hex(id)) WHERE id = $1`},
		{"engine trace id kept as its text", 0, `UPDATE audit SET trace_id = lower(hex(trace_id)) WHERE id = $1`},
		{"client id of 13 hex bytes kept as bytes", 3, `UPDATE audit SET id = unhex(substr(id, 5)) WHERE id = $1`},
		{"known source kept as its name", 0, `UPDATE audit SET source = 'ext_authz-grpc' WHERE id = $1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, raw := compactBackends()[0].open(t)
			ctx := t.Context()
			rs := mixedRecords(t, 6)
			if err := s.AppendAudit(ctx, rs); err != nil {
				t.Fatal(err)
			}
			res, err := raw.ExecContext(ctx, tc.edit, s.dialect.idArg(rs[tc.at].ID))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				t.Skipf("the edit changed %d rows (%v)", n, err)
			}
			var brk *audit.Break
			if _, err := audit.VerifyChains(ctx, s); !errors.As(err, &brk) || brk.ID != rs[tc.at].ID {
				t.Fatalf("verify: %v; want record %s named", err, rs[tc.at].ID)
			}
		})
	}
}
