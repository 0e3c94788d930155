package approvalapi_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestDecideRaceOnTwoReplicas: approvers on two replicas sharing one
// PostgreSQL approve and deny the same approval at once. Exactly one
// decision stands, is the stored one, and is the only one in the audit
// trail; every other is ErrNotPending or ErrExpired and records nothing.
func TestDecideRaceOnTwoReplicas(t *testing.T) {
	u := pgtest.NewDatabase(t)
	var svcs [2]*approvalapi.Service
	var dbs [2]*store.Postgres
	for i := range svcs {
		db, err := store.OpenPostgres(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		w, err := audit.NewWriter(t.Context(), db, audit.WriterConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		if svcs[i], err = approvalapi.New(t.Context(), approvalapi.Config{Store: db, Recorder: w}); err != nil {
			t.Fatal(err)
		}
		dbs[i] = db
	}
	now := time.Now()
	b, err := approval.Binding{AgentID: "agent_a", Chain: []string{"agent_a"}, Action: "send:mail", Resource: "/mail/1"}.Digest()
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := dbs[0].RequestApproval(t.Context(), approval.Approval{ID: approval.NewID(now), Binding: b, AgentID: "agent_a",
		Chain: []string{"agent_a"}, Action: "send:mail", Resource: "/mail/1", Policy: "p", Rule: "r", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	start := make(chan struct{})
	type result struct {
		by  string
		err error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d := approval.Decision{ID: a.ID, Approve: i%2 == 0, By: "alice"}
			if !d.Approve {
				d.By = "bob"
			}
			_, err := svcs[i%2].Decide(context.Background(), d, approvalapi.SourceAdmin)
			results <- result{d.By, err}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	var winners []string
	for r := range results {
		switch {
		case r.err == nil:
			winners = append(winners, r.by)
		case !errors.Is(r.err, approval.ErrNotPending):
			t.Errorf("a losing decision: %v, want ErrNotPending", r.err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d decisions stood (%v), want exactly one", len(winners), winners)
	}
	got, err := dbs[1].GetApproval(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.DecidedBy != winners[0] {
		t.Fatalf("stored: decided by %q, the one that stood: %q", got.DecidedBy, winners[0])
	}
	var recorded []string
	if err := dbs[0].ScanAudit(t.Context(), func(r audit.Record) error {
		if r.Resource == a.ID {
			recorded = append(recorded, r.Action)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(recorded) != 1 {
		t.Fatalf("audit records of the decision: %v, want one", recorded)
	}
}
