package approvalapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/approvalapi"
)

// raiseFor stores a pending approval of agent's request to resource.
func (f *fixture) raiseFor(t *testing.T, agent, resource string) string {
	t.Helper()
	now := time.Now()
	b := approval.Binding{AgentID: agent, Chain: []string{agent}, Action: "send:mail", Resource: resource}
	digest, err := b.Digest()
	if err != nil {
		t.Fatal(err)
	}
	a, outcome, err := f.db.RequestApproval(context.Background(), approval.Approval{
		ID: approval.NewID(now), Binding: digest, AgentID: agent, Chain: []string{agent}, Action: "send:mail",
		Resource: resource, Policy: "p", Rule: "r", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}, now)
	if err != nil || outcome != approval.OutcomeRequested {
		t.Fatalf("raising: %v %v", outcome, err)
	}
	return a.ID
}

// TestWaitersAreBoundedPerAgent: one agent holding many long polls (on
// /v1/approvals/{id} or /v1/check with Prefer: wait) takes at most
// MaxWaitersPerAgent places; another agent still gets to wait.
func TestWaitersAreBoundedPerAgent(t *testing.T) {
	f := newFixture(t, approvalapi.Config{MaxWaiters: 4, MaxWaitersPerAgent: 2}, time.Minute)
	greedy, other := f.raiseFor(t, "agent_greedy", "/mail/1"), f.raiseFor(t, "agent_other", "/mail/2")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	started := 0
	wait := func(id string) {
		started++
		go func() { _, err := f.svc.Wait(ctx, id, time.Minute); done <- err }()
	}
	t.Cleanup(func() {
		cancel()
		for range started {
			<-done
		}
	})
	wait(greedy)
	wait(greedy)
	waitFor(t, "the greedy agent's two waits", func() bool { return f.svc.Waiters() == 2 })
	// A short limit only bounds a broken build: ErrBusy comes at once.
	if _, err := f.svc.Wait(ctx, greedy, 2*time.Second); !errors.Is(err, approvalapi.ErrBusy) {
		t.Fatalf("a third wait of one agent with MaxWaitersPerAgent 2: %v, want ErrBusy", err)
	}
	wait(other)
	waitFor(t, "the other agent's wait", func() bool { return f.svc.Waiters() == 3 })
}
