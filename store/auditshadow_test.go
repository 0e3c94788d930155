package store

import (
	"errors"
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// TestOldTrailShadowColumnEditFound: after the migration, a record written
// before it that carries a shadow answer has shadow set (the migration's
// text search finds every one). Clearing that column hides the record from
// every shadow query (AuditFilter.Shadow reads the column), so
// verification must name the row, as it does for a compact record.
func TestOldTrailShadowColumnEditFound(t *testing.T) {
	for _, tr := range oldTrails() {
		t.Run(tr.name, func(t *testing.T) {
			ctx := t.Context()
			rs := compactRecords(t, audit.GenesisHash, 8)
			edited := rs[4]
			if edited.Shadow == nil {
				t.Fatal("the fixture's record 4 carries no shadow answer")
			}
			raw, open := tr.setUp(t)
			writeOld(t, raw, rs)
			s, closeStore := open()
			t.Cleanup(func() { _ = closeStore() })
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(rs)) || err != nil {
				t.Fatalf("verify before the edit: %d, %v", n, err)
			}
			if _, err := raw.ExecContext(ctx, `UPDATE audit SET shadow = $1 WHERE id = $2`, false, s.dialect.idArg(edited.ID)); err != nil {
				t.Fatal(err)
			}
			page, err := s.QueryAudit(ctx, AuditFilter{Shadow: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				if r.ID == edited.ID {
					t.Fatalf("the edit did not hide %s from the shadow query", edited.ID)
				}
			}
			var brk *audit.Break
			if _, err := audit.VerifyChains(ctx, s); !errors.As(err, &brk) || brk.ID != edited.ID {
				t.Fatalf("verify: %v; want the record whose shadow column was cleared, %s, named", err, edited.ID)
			}
		})
	}
}
