package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshguard/meshguard/approval"
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

// TestRetentionPrunesApprovals: the retention loop deletes the approvals
// that expired more than ApprovalsAfter ago, on a real store, and keeps
// the one still pending (raised as long ago, expiring later); with
// ApprovalsAfter zero (APPROVAL_RETENTION=0) it keeps them all.
func TestRetentionPrunesApprovals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		after     time.Duration
		wantGone  bool
		wantCount int
	}{
		{"after 30 days", 720 * time.Hour, true, 1},
		{"kept forever", 0, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			now := time.Now()
			raise := func(resource string, created, expires time.Time) approval.Approval {
				b, err := approval.Binding{AgentID: "agent_a", Chain: []string{"agent_a"}, Action: "send:mail", Resource: resource}.Digest()
				if err != nil {
					t.Fatal(err)
				}
				a, _, err := s.RequestApproval(context.Background(), approval.Approval{ID: approval.NewID(created), Binding: b, AgentID: "agent_a",
					Chain: []string{"agent_a"}, Action: "send:mail", Resource: resource, CreatedAt: created, ExpiresAt: expires}, now)
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			old := raise("/old", now.Add(-41*24*time.Hour), now.Add(-40*24*time.Hour))
			live := raise("/live", now.Add(-41*24*time.Hour), now.Add(time.Hour))
			ret := audit.Retention{Store: s, Days: 90, Approvals: s, ApprovalsAfter: tc.after}
			if _, err := ret.Prune(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err := s.GetApproval(context.Background(), old.ID)
			if gone := errors.Is(err, approval.ErrNotFound); gone != tc.wantGone {
				t.Fatalf("the approval expired 40 days ago: gone %v (%v), want %v", gone, err, tc.wantGone)
			}
			if _, err := s.GetApproval(context.Background(), live.ID); err != nil {
				t.Fatalf("the pending approval: %v", err)
			}
			if l, err := s.ListApprovals(context.Background(), approval.Filter{}); err != nil || len(l) != tc.wantCount {
				t.Fatalf("%d approvals left, %v; want %d", len(l), err, tc.wantCount)
			}
		})
	}
}
