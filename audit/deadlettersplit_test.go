package audit_test

import (
	"context"
	"fmt"
	"math/bits"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// countingStore counts a real store's AppendAudit calls.
type countingStore struct {
	deadLetterStore
	calls atomic.Int64
}

type deadLetterStore interface {
	outageStore
	audit.DeadLetterStore
}

func (s *countingStore) AppendAudit(ctx context.Context, rs []audit.Record) error {
	s.calls.Add(1)
	return s.deadLetterStore.AppendAudit(ctx, rs)
}

// TestWriterFindsRefusedRecordsByHalving: a batch of 512 records, some of
// which the store refuses as data (at its start, middle or end, or two),
// is stored but for those in about 2·log2(512) writes a refused record
// plus its RefusedAttempts alone, on SQLite and PostgreSQL. Written again
// one record at a time, as before, it took 512 writes and more: every
// record queued behind it waited for 512 transactions, past MaxLag on a
// database that syncs its commits, and decisions were refused meanwhile.
func TestWriterFindsRefusedRecordsByHalving(t *testing.T) {
	const batch = 512
	for _, b := range refusingBackends()[:2] {
		for _, bad := range [][]int{{0}, {batch / 2}, {batch - 1}, {10, 400}} {
			t.Run(fmt.Sprint(b.name, bad), func(t *testing.T) {
				s := &countingStore{deadLetterStore: b.open(t).(deadLetterStore)}
				w, err := audit.NewWriter(t.Context(), s, audit.WriterConfig{FlushInterval: time.Hour, MaxLag: 2 * time.Hour,
					MaxBatch: batch, RetryBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				refused := map[int]bool{}
				for _, i := range bad {
					refused[i] = true
				}
				for i := range batch {
					r := record(i)
					if refused[i] {
						b.bad(&r)
					}
					if err := w.Write(t.Context(), r); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
				defer cancel()
				if err := w.Close(ctx); err != nil {
					t.Fatal(err)
				}
				t.Logf("%d store writes", s.calls.Load())
				perRefused := 2*bits.Len(batch) + audit.DefaultRefusedAttempts
				if n := s.calls.Load(); n > int64(1+len(bad)*perRefused) {
					t.Errorf("%d store writes for a batch of %d with %d refused; want at most %d", n, batch, len(bad), 1+len(bad)*perRefused)
				}
				rep, err := audit.Verify(t.Context(), s, audit.VerifyOptions{})
				if rep.Verified != batch-int64(len(bad)) || rep.DeadLetters == nil || rep.DeadLetters.Count != int64(len(bad)) {
					t.Fatalf("verify: %d records, dead letters %+v (%v); want %d and %d", rep.Verified, rep.DeadLetters, err, batch-len(bad), len(bad))
				}
			})
		}
	}
}
