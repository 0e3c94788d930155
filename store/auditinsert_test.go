package store_test

import (
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// TestAppendAuditChunks: batches of every shape the chunked INSERTs cut
// differently (one row, powers of two and one either side, more than one
// full chunk) store every record once, in chain order, and verify.
func TestAppendAuditChunks(t *testing.T) {
	for _, b := range auditBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t)
			prev := audit.GenesisHash
			var want []string
			for _, n := range []int{1, 3, 7, 8, 127, 255, 256, 257, 700} {
				rs := sealed(t, prev, n)
				if err := s.AppendAudit(t.Context(), rs); err != nil {
					t.Fatalf("batch of %d: %v", n, err)
				}
				for _, r := range rs {
					want = append(want, r.ID)
				}
				prev = rs[n-1].Hash
			}
			var got []string
			if err := s.ScanAudit(t.Context(), func(r audit.Record) error {
				got = append(got, r.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("stored %d records, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("record %d is %s, want %s", i, got[i], want[i])
				}
			}
			n, err := audit.VerifyChains(t.Context(), s)
			if err != nil || n != int64(len(want)) {
				t.Fatalf("VerifyChains = %d, %v; want %d, nil", n, err, len(want))
			}
			head, err := s.LastAuditHash(t.Context())
			if err != nil || head != prev {
				t.Fatalf("LastAuditHash = %.12s…, %v; want %.12s…", head, err, prev)
			}
		})
	}
}
