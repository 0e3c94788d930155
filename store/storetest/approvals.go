package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/approval"
)

// ApprovalBackend is the store's part of human approval.
type ApprovalBackend interface {
	RequestApproval(ctx context.Context, a approval.Approval, now time.Time) (approval.Approval, approval.Outcome, error)
	GetApproval(ctx context.Context, id string) (approval.Approval, error)
	ListApprovals(ctx context.Context, f approval.Filter) ([]approval.Approval, error)
	DecideApproval(ctx context.Context, d approval.Decision) (approval.Approval, error)
	PruneApprovals(ctx context.Context, before time.Time, batch int) (int64, error)
}

func approvalTests() []test {
	return []test{
		{"RaiseFindsPending", testApprovalRaiseIdempotent},
		{"ConcurrentFirstRequests", testApprovalConcurrentRaise},
		{"UseOnce", testApprovalUseOnce},
		{"UseOnce/Race", testApprovalConsumeRace},
		{"TTL", testApprovalTTL},
		{"Denied", testApprovalDenied},
		{"PendingExpires", testApprovalPendingExpires},
		{"Decide/Errors", testApprovalDecideErrors},
		{"List", testApprovalList},
		{"Invalid", testApprovalInvalid},
		{"TooMany", testApprovalTooMany},
		{"TwoHandles", testApprovalTwoHandles},
		{"Prune", testApprovalPrune},
	}
}

// candidate is a new approval of a request bound as binding (any string:
// it is hashed), raised at now, pending for a day.
func candidate(t *testing.T, agent, binding string, now time.Time, ttl time.Duration) approval.Approval {
	t.Helper()
	digest, err := approval.Binding{AgentID: agent, Chain: []string{agent}, Action: "write:email", Resource: binding}.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return approval.Approval{
		ID: approval.NewID(now), Binding: digest, AgentID: agent, AgentName: "emailer", Chain: []string{agent},
		Action: "write:email", Resource: binding, Method: "tools/call", Name: "send_email",
		Arguments: json.RawMessage(`{"to":"a@example.com","password":"[redacted]"}`), ArgumentsDigest: "ab",
		Query: "to=eve%40example.com&token=[redacted]", Context: json.RawMessage(`{"query.to":"eve@example.com"}`),
		Params: json.RawMessage(`{"message":{"parts":[{"text":"hi"}]}}`), ParamsDigest: "cd", Omitted: []string{"arguments"},
		Policy: "mail", Rule: "external", Approvers: []string{"security"}, TTL: ttl,
		TraceID: "0af7651916cd43dd8448eb211c80319c", DecisionID: "dec_1",
		CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour),
	}
}

func request(t *testing.T, b ApprovalBackend, a approval.Approval, now time.Time, want approval.Outcome) approval.Approval {
	t.Helper()
	got, outcome, err := b.RequestApproval(t.Context(), a, now)
	if err != nil || outcome != want {
		t.Fatalf("RequestApproval = %s, %v; want %s", outcome, err, want)
	}
	return got
}

func decide(t *testing.T, b ApprovalBackend, id string, approve bool) approval.Approval {
	t.Helper()
	got, err := b.DecideApproval(t.Context(), approval.Decision{ID: id, Approve: approve, By: "alice@example.com", Reason: "checked"})
	if err != nil {
		t.Fatalf("DecideApproval(%s, %v): %v", id, approve, err)
	}
	return got
}

// testApprovalRaiseIdempotent: a retry while pending finds the approval
// raised (same id, stored as given); another binding raises another; and
// it is all there after a reopen.
func testApprovalRaiseIdempotent(t *testing.T, open func(*testing.T) Backend) {
	b := open(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	first := candidate(t, "agent_a", "/r1", now, 0)
	got := request(t, b, first, now, approval.OutcomeRequested)
	want := first
	want.Status = approval.Pending
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("raised (-want +got):\n%s", diff)
	}
	again := request(t, b, candidate(t, "agent_a", "/r1", now, 0), now.Add(time.Minute), approval.OutcomePending)
	if again.ID != first.ID {
		t.Fatalf("retry got %s, want the pending %s", again.ID, first.ID)
	}
	other := request(t, b, candidate(t, "agent_a", "/r2", now, 0), now, approval.OutcomeRequested)
	if other.ID == first.ID {
		t.Fatal("another binding got the same approval")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openClosed(t, open)
	stored, err := b.GetApproval(t.Context(), first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Fatalf("after reopen (-want +got):\n%s", diff)
	}
}

// raceRequests runs n RequestApproval of one binding at once, over the
// backends in turn, and counts the outcomes and the ids returned.
func raceRequests(t *testing.T, bs []Backend, n int, agent, binding string, now time.Time) (map[approval.Outcome]int, map[string]bool) {
	t.Helper()
	var (
		mu       sync.Mutex
		outcomes = map[approval.Outcome]int{}
		ids      = map[string]bool{}
		wg       sync.WaitGroup
		start    = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			got, outcome, err := bs[i%len(bs)].RequestApproval(t.Context(), candidate(t, agent, binding, now, 0), now)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("RequestApproval: %v", err)
				return
			}
			outcomes[outcome]++
			ids[got.ID] = true
		})
	}
	close(start)
	wg.Wait()
	return outcomes, ids
}

// testApprovalConcurrentRaise: 20 first requests at once raise one approval.
func testApprovalConcurrentRaise(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	outcomes, ids := raceRequests(t, []Backend{b}, 20, "agent_a", "/r", now)
	if outcomes[approval.OutcomeRequested] != 1 || outcomes[approval.OutcomePending] != 19 || len(ids) != 1 {
		t.Fatalf("outcomes %v, %d ids; want 1 requested, 19 pending, one id", outcomes, len(ids))
	}
}

// testApprovalUseOnce: an approved use-once approval is used by one
// request; the next raises a new approval.
func testApprovalUseOnce(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	a := request(t, b, candidate(t, "agent_a", "/r", now, 0), now, approval.OutcomeRequested)
	start := time.Now()
	decided := decide(t, b, a.ID, true)
	if decided.Status != approval.Approved || decided.DecidedBy != "alice@example.com" || decided.DecisionReason != "checked" {
		t.Fatalf("decided = %+v", decided)
	}
	checkStamp(t, "DecidedAt", decided.DecidedAt, start)
	if w := decided.ExpiresAt.Sub(decided.DecidedAt); w != 24*time.Hour {
		t.Errorf("approved use-once window = %v, want the 24h it had while pending", w)
	}
	used := request(t, b, candidate(t, "agent_a", "/r", now, 0), now, approval.OutcomeGranted)
	if used.ID != a.ID || used.Status != approval.Used || used.Uses != 1 {
		t.Fatalf("used = %s %s uses %d; want %s used once", used.ID, used.Status, used.Uses, a.ID)
	}
	next := request(t, b, candidate(t, "agent_a", "/r", now, 0), now, approval.OutcomeRequested)
	if next.ID == a.ID {
		t.Fatal("a used approval was found again")
	}
	if _, err := b.DecideApproval(t.Context(), approval.Decision{ID: a.ID, Approve: true, By: "bob"}); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("deciding a used approval: %v, want ErrNotPending", err)
	}
}

// testApprovalConsumeRace: 20 retries at once of a request approved for one
// use: exactly one is granted.
func testApprovalConsumeRace(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	a := request(t, b, candidate(t, "agent_a", "/r", now, 0), now, approval.OutcomeRequested)
	decide(t, b, a.ID, true)
	outcomes, _ := raceRequests(t, []Backend{b}, 20, "agent_a", "/r", now)
	if outcomes[approval.OutcomeGranted] != 1 || outcomes[approval.OutcomeRequested] != 1 || outcomes[approval.OutcomePending] != 18 {
		t.Fatalf("outcomes %v; want 1 granted, 1 requested (the next approval), 18 pending", outcomes)
	}
}

// testApprovalTwoHandles: two handles on one database (two replicas) share
// approvals: concurrent first requests over both raise one, and a
// use-once approval is used once over both.
func testApprovalTwoHandles(t *testing.T, open func(*testing.T) Backend) {
	b1 := openClosed(t, open)
	b2 := openClosed(t, open)
	now := time.Now()
	outcomes, ids := raceRequests(t, []Backend{b1, b2}, 20, "agent_a", "/r", now)
	if outcomes[approval.OutcomeRequested] != 1 || len(ids) != 1 {
		t.Fatalf("outcomes %v, %d ids; want one approval raised", outcomes, len(ids))
	}
	for id := range ids {
		decide(t, b2, id, true)
	}
	outcomes, _ = raceRequests(t, []Backend{b1, b2}, 20, "agent_a", "/r", now)
	if outcomes[approval.OutcomeGranted] != 1 {
		t.Fatalf("outcomes %v; want exactly one granted", outcomes)
	}
}

// testApprovalTTL: an approval with a ttl is used until it runs out; the
// request after answers expired, and the next raises a new one.
func testApprovalTTL(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	a := request(t, b, candidate(t, "agent_a", "/r", now, time.Hour), now, approval.OutcomeRequested)
	decided := decide(t, b, a.ID, true)
	if w := decided.ExpiresAt.Sub(decided.DecidedAt); w != time.Hour {
		t.Fatalf("ttl approval window = %v, want 1h", w)
	}
	for i := 1; i <= 3; i++ {
		got := request(t, b, candidate(t, "agent_a", "/r", now, time.Hour), decided.DecidedAt.Add(time.Duration(i)*time.Minute), approval.OutcomeGranted)
		if got.Status != approval.Approved || got.Uses != i {
			t.Fatalf("use %d: %s, uses %d", i, got.Status, got.Uses)
		}
	}
	late := decided.ExpiresAt
	got := request(t, b, candidate(t, "agent_a", "/r", now, time.Hour), late, approval.OutcomeExpired)
	if got.ID != a.ID || got.Status != approval.Expired {
		t.Fatalf("after expiry: %s %s", got.ID, got.Status)
	}
	if next := request(t, b, candidate(t, "agent_a", "/r", late, time.Hour), late, approval.OutcomeRequested); next.ID == a.ID {
		t.Fatal("expired approval found again")
	}
}

// testApprovalDenied: a denial answers retries until the request's pending
// deadline, then a retry raises a new approval.
func testApprovalDenied(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	a := request(t, b, candidate(t, "agent_a", "/r", now, 0), now, approval.OutcomeRequested)
	decide(t, b, a.ID, false)
	if got := request(t, b, candidate(t, "agent_a", "/r", now, 0), a.ExpiresAt.Add(-time.Microsecond), approval.OutcomeDenied); got.ID != a.ID || got.Status != approval.Denied {
		t.Fatalf("retry after denial: %s %s", got.ID, got.Status)
	}
	if got := request(t, b, candidate(t, "agent_a", "/r", a.ExpiresAt, 0), a.ExpiresAt, approval.OutcomeRequested); got.ID == a.ID {
		t.Fatal("the denied approval was found past its window")
	}
}

// testApprovalPendingExpires: nobody decided in time: the retry that finds
// it answers expired, the approval cannot be approved any more, and the
// next retry raises a new one.
func testApprovalPendingExpires(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	past := time.Now().Add(-25 * time.Hour)
	a := request(t, b, candidate(t, "agent_a", "/r", past, 0), past, approval.OutcomeRequested)
	if got, err := b.GetApproval(t.Context(), a.ID); err != nil || got.Status != approval.Expired {
		t.Fatalf("GetApproval of a lapsed approval = %s, %v; want expired", got.Status, err)
	}
	if _, err := b.DecideApproval(t.Context(), approval.Decision{ID: a.ID, Approve: true, By: "alice"}); !errors.Is(err, approval.ErrExpired) {
		t.Fatalf("approving a lapsed approval: %v, want ErrExpired", err)
	}
	now := time.Now()
	request(t, b, candidate(t, "agent_a", "/r", now, 0), now, approval.OutcomeExpired)
	request(t, b, candidate(t, "agent_a", "/r", now, 0), now, approval.OutcomeRequested)
}

// testApprovalDecideErrors: bad or impossible decisions change nothing.
func testApprovalDecideErrors(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	a := request(t, b, candidate(t, "agent_a", "/r", now, 0), now, approval.OutcomeRequested)
	for _, tc := range []struct {
		name string
		d    approval.Decision
		want error
	}{
		{"unknown id", approval.Decision{ID: approval.NewID(now), Approve: true, By: "alice"}, approval.ErrNotFound},
		{"malformed id", approval.Decision{ID: "apr_x", Approve: true, By: "alice"}, approval.ErrInvalid},
		{"nobody", approval.Decision{ID: a.ID, Approve: true}, approval.ErrInvalid},
		{"long reason", approval.Decision{ID: a.ID, Approve: true, By: "alice", Reason: string(make([]byte, approval.MaxReason+1))}, approval.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.DecideApproval(t.Context(), tc.d)
			wantErr(t, err, tc.want, "DecideApproval")
		})
	}
	if got, err := b.GetApproval(t.Context(), a.ID); err != nil || got.Status != approval.Pending || got.DecidedBy != "" {
		t.Fatalf("after refused decisions: %+v, %v; want it pending, undecided", got, err)
	}
	if _, err := b.GetApproval(t.Context(), approval.NewID(now)); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("GetApproval(unknown) = %v", err)
	}
}

// testApprovalList: filters by status and agent, newest first, in pages.
func testApprovalList(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	var ids []string
	for i := range 5 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		a := request(t, b, candidate(t, "agent_a", fmt.Sprintf("/r%d", i), at, 0), at, approval.OutcomeRequested)
		ids = append(ids, a.ID)
	}
	other := request(t, b, candidate(t, "agent_b", "/r", now, 0), now, approval.OutcomeRequested)
	decide(t, b, ids[1], false)
	list := func(f approval.Filter) []string {
		t.Helper()
		got, err := b.ListApprovals(t.Context(), f)
		if err != nil {
			t.Fatalf("ListApprovals(%+v): %v", f, err)
		}
		out := []string{}
		for _, a := range got {
			out = append(out, a.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    approval.Filter
		want []string
	}{
		{"agent", approval.Filter{AgentID: "agent_a"}, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"pending of agent", approval.Filter{AgentID: "agent_a", Status: approval.Pending}, []string{ids[4], ids[3], ids[2], ids[0]}},
		{"denied", approval.Filter{Status: approval.Denied}, []string{ids[1]}},
		{"other agent", approval.Filter{AgentID: "agent_b"}, []string{other.ID}},
		{"page", approval.Filter{AgentID: "agent_a", Limit: 2}, []string{ids[4], ids[3]}},
		{"next page", approval.Filter{AgentID: "agent_a", Limit: 2, Before: ids[3]}, []string{ids[2], ids[1]}},
		{"none", approval.Filter{Status: approval.Used}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, list(tc.f)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, f := range []approval.Filter{{Limit: approval.MaxList + 1}, {Limit: -1}, {Status: "maybe"}, {Before: "x"}} {
		if _, err := b.ListApprovals(t.Context(), f); !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("ListApprovals(%+v) = %v, want ErrInvalid", f, err)
		}
	}
}

// testApprovalInvalid: a malformed approval is refused and stores nothing.
func testApprovalInvalid(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	for _, tc := range []struct {
		name string
		mod  func(*approval.Approval)
	}{
		{"bad id", func(a *approval.Approval) { a.ID = "apr_guessable" }},
		{"no binding", func(a *approval.Approval) { a.Binding = "" }},
		{"no chain", func(a *approval.Approval) { a.Chain = nil }},
		{"long chain", func(a *approval.Approval) { a.Chain = make([]string, approval.MaxChain+1) }},
		{"no expiry", func(a *approval.Approval) { a.ExpiresAt = a.CreatedAt }},
		{"huge arguments", func(a *approval.Approval) { a.Arguments = make([]byte, approval.MaxArguments+1) }},
		{"long action", func(a *approval.Approval) { a.Action = string(make([]byte, approval.MaxText+1)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := candidate(t, "agent_a", "/r", now, 0)
			tc.mod(&a)
			_, _, err := b.RequestApproval(t.Context(), a, now)
			wantErr(t, err, approval.ErrInvalid, "RequestApproval")
		})
	}
	if got, err := b.ListApprovals(t.Context(), approval.Filter{}); err != nil || len(got) != 0 {
		t.Fatalf("after refusals: %d approvals, %v; want none", len(got), err)
	}
}

// testApprovalTooMany: past the per-agent bound nothing more is raised for
// that agent; another agent is not affected.
func testApprovalTooMany(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	for i := range approval.MaxPendingPerAgent {
		request(t, b, candidate(t, "agent_a", fmt.Sprintf("/r%d", i), now, 0), now, approval.OutcomeRequested)
	}
	_, _, err := b.RequestApproval(t.Context(), candidate(t, "agent_a", "/one-more", now, 0), now)
	wantErr(t, err, approval.ErrTooMany, "RequestApproval past the bound")
	request(t, b, candidate(t, "agent_a", "/r0", now, 0), now, approval.OutcomePending)
	request(t, b, candidate(t, "agent_b", "/r", now, 0), now, approval.OutcomeRequested)
}

// testApprovalPrune: retention deletes the approvals whose expiry is
// before the cut — one that lapsed pending, one approved whose window
// ended — in batches of any size, and keeps every approval still running
// however old: pending (raised long ago, not yet expired), approved and
// denied within their windows. A cut in the future or a batch out of
// bounds is refused and deletes nothing.
func testApprovalPrune(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	now := time.Now()
	lapsed := request(t, b, candidate(t, "agent_a", "/lapsed", now.Add(-50*time.Hour), 0), now, approval.OutcomeRequested)
	old := candidate(t, "agent_a", "/old-pending", now.Add(-100*time.Hour), 0)
	old.ExpiresAt = now.Add(time.Hour)
	oldPending := request(t, b, old, now, approval.OutcomeRequested)
	ended := request(t, b, candidate(t, "agent_a", "/ended", now, time.Microsecond), now, approval.OutcomeRequested)
	ended = decide(t, b, ended.ID, true) // usable for 1µs after the decision
	approved := decide(t, b, request(t, b, candidate(t, "agent_a", "/approved", now, time.Hour), now, approval.OutcomeRequested).ID, true)
	denied := decide(t, b, request(t, b, candidate(t, "agent_a", "/denied", now, 0), now, approval.OutcomeRequested).ID, false)

	for _, tc := range []struct {
		name   string
		before time.Time
		batch  int
	}{
		{"a cut in the future", time.Now().Add(time.Minute), 10},
		{"no batch", time.Now(), 0},
		{"an oversized batch", time.Now(), 1 << 20},
	} {
		if n, err := b.PruneApprovals(t.Context(), tc.before, tc.batch); !errors.Is(err, approval.ErrInvalid) || n != 0 {
			t.Fatalf("%s: pruned %d, %v; want ErrInvalid", tc.name, n, err)
		}
	}
	if l, err := b.ListApprovals(t.Context(), approval.Filter{}); err != nil || len(l) != 5 {
		t.Fatalf("after refused prunes: %d approvals, %v; want 5", len(l), err)
	}
	cut := time.Now()
	for !cut.After(ended.ExpiresAt) { // the wall clock passes the end of its 1µs window
		cut = time.Now()
	}
	n, err := b.PruneApprovals(t.Context(), cut, 1)
	if err != nil || n != 2 {
		t.Fatalf("PruneApprovals = %d, %v; want 2 (batches of one)", n, err)
	}
	for _, a := range []approval.Approval{lapsed, ended} {
		if _, err := b.GetApproval(t.Context(), a.ID); !errors.Is(err, approval.ErrNotFound) {
			t.Errorf("%s (%s) not pruned: %v", a.Resource, a.ID, err)
		}
	}
	for _, a := range []approval.Approval{oldPending, approved, denied} {
		if got, err := b.GetApproval(t.Context(), a.ID); err != nil || got.Status != a.Status {
			t.Errorf("%s: %s, %v; want it kept, %s", a.Resource, got.Status, err, a.Status)
		}
	}
	if n, err := b.PruneApprovals(t.Context(), time.Now(), 100); err != nil || n != 0 {
		t.Fatalf("pruning again = %d, %v; want 0", n, err)
	}
}
