package approvalapi

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// wokenCheck is a Recorder that notes, at each record, whether the
// service had already woken the checks waiting on the round before.
type wokenCheck struct {
	round <-chan struct{}
	woken []bool
}

func (w *wokenCheck) Write(_ context.Context, _ audit.Record) error {
	select {
	case <-w.round:
		w.woken = append(w.woken, true)
	default:
		w.woken = append(w.woken, false)
	}
	return nil
}

// TestDecisionRecordedBeforeWaitersWake: a person's decision is in the
// audit trail before the checks waiting on it are woken, so the record of
// the decision it lets through comes after it (a trace reads requested,
// approved, granted; woken first, a waiting check's grant could be written
// first, and server TestCheckWaitKeepsOneTrace failed now and then).
func TestDecisionRecordedBeforeWaitersWake(t *testing.T) {
	ctx := t.Context()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	rec := &wokenCheck{}
	s, err := New(ctx, Config{Store: db, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	for i, approve := range []bool{true, false} {
		now := time.Now()
		resource := fmt.Sprintf("/mail/%d", i)
		b := approval.Binding{AgentID: "agent_a", Chain: []string{"agent_a"}, Action: "send:mail", Resource: resource}
		digest, err := b.Digest()
		if err != nil {
			t.Fatal(err)
		}
		a, _, err := db.RequestApproval(ctx, approval.Approval{
			ID: approval.NewID(now), Binding: digest, AgentID: "agent_a", Chain: []string{"agent_a"}, Action: "send:mail",
			Resource: resource, Policy: "p", Rule: "r", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		}, now)
		if err != nil {
			t.Fatal(err)
		}
		rec.round, rec.woken = s.round(), nil
		if _, err := s.Decide(ctx, approval.Decision{ID: a.ID, Approve: approve, By: "alice"}, SourceAdmin); err != nil {
			t.Fatal(err)
		}
		if len(rec.woken) != 1 || rec.woken[0] {
			t.Fatalf("approve %v: recorded %d times, waiters woken before the record: %v", approve, len(rec.woken), rec.woken)
		}
		select {
		case <-rec.round:
		default:
			t.Fatalf("approve %v: the waiters were not woken", approve)
		}
	}
}
