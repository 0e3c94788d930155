package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

func TestRetentionCutoff(t *testing.T) {
	r := audit.Retention{Days: 90}
	tests := []struct {
		now, want time.Time
	}{
		{time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), time.Date(2025, 12, 2, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), time.Date(2025, 12, 2, 0, 0, 0, 0, time.UTC)},
		// Late on the 1st in New York is the 2nd in UTC: days are UTC days.
		{time.Date(2026, 3, 1, 22, 0, 0, 0, time.FixedZone("EST", -5*3600)), time.Date(2025, 12, 2, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		if got := r.Cutoff(tc.now); !got.Equal(tc.want) {
			t.Errorf("Cutoff(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
}

// TestRetentionPrunesWholeDays: with one day kept, records from two days
// ago go, today's and yesterday's stay, and what stays verifies from the
// anchor.
func TestRetentionPrunesWholeDays(t *testing.T) {
	s := newStore(t)
	now := time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Time{
		now.AddDate(0, 0, -2).Add(-time.Hour), now.AddDate(0, 0, -2), // the 1st: goes
		now.AddDate(0, 0, -1).Add(-11 * time.Hour), now.Add(-time.Hour), // the 2nd and 3rd: stay
	} {
		r := record(i)
		r.Timestamp = at
		if err := w.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	ret := audit.Retention{Store: s, Days: 1, Now: func() time.Time { return now }}
	if n, err := ret.Prune(context.Background()); err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	if n, err := audit.VerifyChains(context.Background(), s); err != nil || n != 2 {
		t.Fatalf("after retention: %d records, %v", n, err)
	}
	// The writer goes on from where the chain ends.
	if err := w.Write(context.Background(), record(9)); err != nil {
		t.Fatal(err)
	}
}
