package store_test

import (
	"errors"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
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

// TestAppendAuditRefusedRowStoresNothing: a batch refused by a row past
// its first chunk's first (a duplicate id; SQLite's INSERT ends the
// transaction there, with no statement journal) stores none of its
// records, not those of the chunks before, and the trail takes the next
// batch and verifies.
func TestAppendAuditRefusedRowStoresNothing(t *testing.T) {
	for _, at := range []struct {
		name string
		row  int // the batch's row that repeats a stored id
	}{
		{"in the first chunk", 100},
		{"in a later chunk", 270},
		{"the last row", 299},
	} {
		for _, b := range auditBackends() {
			t.Run(b.name+"/"+at.name, func(t *testing.T) {
				s, _ := b.open(t)
				stored := sealed(t, audit.GenesisHash, 5)
				if err := s.AppendAudit(t.Context(), stored); err != nil {
					t.Fatal(err)
				}
				bad := sealed(t, stored[4].Hash, 300)
				bad[at.row].ID = stored[2].ID
				if err := bad[at.row].Seal(bad[at.row].PrevHash); err != nil {
					t.Fatal(err)
				}
				for i := at.row + 1; i < len(bad); i++ {
					if err := bad[i].Seal(bad[i-1].Hash); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.AppendAudit(t.Context(), bad); !errors.Is(err, identity.ErrConflict) {
					t.Fatalf("batch with a duplicate id at row %d: %v, want a conflict", at.row, err)
				}
				if n, err := audit.VerifyChains(t.Context(), s); err != nil || n != 5 {
					t.Fatalf("after the refused batch: VerifyChains = %d, %v; want 5, nil", n, err)
				}
				next := sealed(t, stored[4].Hash, 300)
				if err := s.AppendAudit(t.Context(), next); err != nil {
					t.Fatalf("the next batch: %v", err)
				}
				if n, err := audit.VerifyChains(t.Context(), s); err != nil || n != 305 {
					t.Fatalf("after the next batch: VerifyChains = %d, %v; want 305, nil", n, err)
				}
			})
		}
	}
}
