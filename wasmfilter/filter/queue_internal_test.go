package filter

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/filterconfig"
)

// TestAuditQueueKeepsOrderAcrossChunks: the queue's records, kept in
// fixed chunks, come out in the order written, whatever the batch sizes
// and however the writes interleave with batches settled; a batch on its
// way is the same records, unchanged, when its answer comes, although
// records were written meanwhile; and an emptied queue holds no record,
// no byte and at most one spare chunk, so chunks never pile up.
func TestAuditQueueKeepsOrderAcrossChunks(t *testing.T) {
	for _, tc := range []struct {
		name          string
		write, settle []int // per round: records written, then the batch settled
	}{
		{"one record at a time", []int{1, 1, 1}, []int{1, 1, 1}},
		{"a chunk exactly", []int{chunkLen, chunkLen}, []int{chunkLen, chunkLen}},
		{"batches across chunks", []int{100, 100, 100, 57}, []int{100, 37, 150, 70}},
		{"a backlog several chunks long", []int{5 * chunkLen, 3, 1}, []int{1, chunkLen + 1, 4*chunkLen + 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &auditQueue{cfg: &filterconfig.Config{}}
			written, shipped := 0, 0
			for round := range tc.write {
				// The batch is taken before this round's writes, settled after.
				n := min(tc.settle[round], q.n)
				inFlight := q.batch(n)
				want := ids(inFlight)
				for range tc.write[round] {
					if err := q.Write(context.Background(), audit.Record{ID: fmt.Sprintf("aud_%d", written), Path: "/p"}); err != nil {
						t.Fatal(err)
					}
					written++
				}
				if got := ids(inFlight); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("round %d: the batch in flight became %v, was %v", round, got, want)
				}
				for i, id := range want {
					if id != fmt.Sprintf("aud_%d", shipped+i) {
						t.Fatalf("round %d: batch record %d is %s, want aud_%d", round, i, id, shipped+i)
					}
				}
				q.shift(n)
				shipped += n
			}
			rest := ids(q.batch(q.n))
			for i, id := range rest {
				if id != fmt.Sprintf("aud_%d", shipped+i) {
					t.Fatalf("held record %d is %s, want aud_%d", i, id, shipped+i)
				}
			}
			if shipped+len(rest) != written {
				t.Fatalf("%d shipped and %d held of %d written", shipped, len(rest), written)
			}
			q.shift(q.n)
			if q.n != 0 || q.bytes != 0 || len(q.chunks) != 0 || q.head != 0 {
				t.Fatalf("emptied queue: %d records, %d bytes, %d chunks, head %d", q.n, q.bytes, len(q.chunks), q.head)
			}
			if q.spare != nil {
				for i := range q.spare {
					if !reflect.DeepEqual(q.spare[i], audit.Record{}) {
						t.Fatalf("the spare chunk still holds record %d: %s", i, q.spare[i].ID)
					}
				}
			}
		})
	}
}

func ids(runs [][]audit.Record) []string {
	var out []string
	for _, recs := range runs {
		for i := range recs {
			out = append(out, recs[i].ID)
		}
	}
	return out
}
