package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/trust"
)

// approvePolicy: mailers need a person's approval to write (once) and to
// publish (for ten minutes); deleting is denied outright; the orchestrator
// may delegate and is allowed everything itself.
const approvePolicy = `
name: mail
appliesTo: {tags: [mailer]}
rateLimits: {requestsPerMinute: 1000}
rules:
  - {name: no-delete, effect: deny, actions: ["delete:*"]}
  - {name: ask, effect: approve, actions: ["write:*", "call:mail/*"], approvers: [security]}
  - {name: timed, effect: approve, actions: ["publish:*"], ttl: 10m}
  - {name: limited, effect: approve, actions: ["burst:*"], conditions: {rateLimit: {requestsPerMinute: 1}}}
  - {name: rest, effect: allow, actions: ["*"]}
---
name: orch
appliesTo: {tags: [orch]}
delegation: {maxDepth: 2}
rules:
  - {name: all, effect: allow, actions: ["*"]}
`

// clock is the engine's clock, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// raised collects the approvals the engine says it raised.
type raised struct {
	mu  sync.Mutex
	ids []string
}

func (r *raised) ApprovalRaised(_ context.Context, a approval.Approval) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, a.ID)
}

func (r *raised) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

type approvalFixture struct {
	f      *enginetest.Fixture
	clock  *clock
	raised *raised
	mailer string // token
	other  string // another mailer's token
	orch   string
}

func newApprovalFixture(t *testing.T, mode engine.Mode) *approvalFixture {
	t.Helper()
	c := &clock{now: time.Now()}
	r := &raised{}
	f := enginetest.New(t, approvePolicy, enginetest.Options{Mode: mode, Now: c.Now, ApprovalNotifier: r,
		ApprovalPendingTTL: 30 * time.Minute, ApprovalArguments: audit.ArgumentsConfig{Record: true},
		Routes: []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}})
	_, mailer := f.Agent(t, "mailer", trust.Verified, []string{"mailer"})
	_, other := f.Agent(t, "mailer2", trust.Verified, []string{"mailer"})
	_, orch := f.Agent(t, "orch", trust.Trusted, []string{"orch"})
	return &approvalFixture{f: f, clock: c, raised: r, mailer: mailer, other: other, orch: orch}
}

func (af *approvalFixture) write(resource string) engine.Request {
	return engine.Request{Source: engine.SourceAPI, Token: af.mailer, Action: "write:email", Resource: resource}
}

func (af *approvalFixture) decide(t *testing.T, id string, approve bool) {
	t.Helper()
	if _, err := af.f.Store.DecideApproval(context.Background(), approval.Decision{ID: id, Approve: approve, By: "alice@example.com"}); err != nil {
		t.Fatalf("DecideApproval: %v", err)
	}
}

// wantApproval checks a decision's status, reason and approval.
func wantApproval(t *testing.T, d engine.Decision, status int, reason string, outcome approval.Outcome) {
	t.Helper()
	if d.Status != status || d.Reason != reason || d.ApprovalOutcome != outcome || (outcome != "" && !approval.ValidID(d.ApprovalID)) {
		t.Fatalf("decision %d %s approval %q %s (%s); want %d %s %s", d.Status, d.Reason, d.ApprovalID, d.ApprovalOutcome, d.Message, status, reason, outcome)
	}
}

// TestApprovalUseOnce: the first request raises an approval (403 with its
// id, the notifier told); a retry while pending gets the same id; once
// approved, one retry is allowed as the approve rule, and the next asks
// again under a new id.
func TestApprovalUseOnce(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	e := af.f.Engine
	first := check(t, e, af.write("/outbox/1"))
	wantApproval(t, first, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
	if first.Effect != "deny" || first.Allowed || first.Policy != "mail" || first.Rule != "ask" {
		t.Fatalf("first: %+v", first)
	}
	if got := af.raised.list(); len(got) != 1 || got[0] != first.ApprovalID {
		t.Fatalf("notified of %v, want [%s]", got, first.ApprovalID)
	}
	again := check(t, e, af.write("/outbox/1"))
	wantApproval(t, again, 403, engine.ReasonApprovalRequired, approval.OutcomePending)
	if again.ApprovalID != first.ApprovalID || len(af.raised.list()) != 1 {
		t.Fatalf("retry while pending: approval %s, %d raised; want %s, one raised", again.ApprovalID, len(af.raised.list()), first.ApprovalID)
	}
	af.decide(t, first.ApprovalID, true)
	granted := check(t, e, af.write("/outbox/1"))
	wantApproval(t, granted, 200, engine.ReasonApprovalGranted, approval.OutcomeGranted)
	if !granted.Allowed || granted.ApprovalID != first.ApprovalID || granted.Policy != "mail" || granted.Rule != "ask" {
		t.Fatalf("granted: %+v", granted)
	}
	next := check(t, e, af.write("/outbox/1"))
	wantApproval(t, next, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
	if next.ApprovalID == first.ApprovalID {
		t.Fatal("a use-once approval was used twice")
	}

	// Every step is in the audit trail, joined to its decision.
	var got []audit.Approval
	for _, rec := range records(t, af.f) {
		if rec.Approval == nil {
			t.Fatalf("record %s (%s) has no approval", rec.ID, rec.Reason)
		}
		got = append(got, *rec.Approval)
	}
	want := []audit.Approval{
		{ID: first.ApprovalID, Outcome: "requested"}, {ID: first.ApprovalID, Outcome: "pending"},
		{ID: first.ApprovalID, Outcome: "granted"}, {ID: next.ApprovalID, Outcome: "requested"},
	}
	if len(got) != len(want) {
		t.Fatalf("records' approvals %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d: approval %v, want %v", i, got[i], want[i])
		}
	}
}

// TestApprovalDeniedAndExpired: a denial answers retries with its own
// reason; an approval nobody decides expires, answered so once, and the
// next retry asks again.
func TestApprovalDeniedAndExpired(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	e := af.f.Engine
	denied := check(t, e, af.write("/outbox/denied"))
	af.decide(t, denied.ApprovalID, false)
	d := check(t, e, af.write("/outbox/denied"))
	wantApproval(t, d, 403, engine.ReasonApprovalDenied, approval.OutcomeDenied)
	if d.ApprovalID != denied.ApprovalID {
		t.Fatalf("denied answers with %s, want %s", d.ApprovalID, denied.ApprovalID)
	}

	lapsed := check(t, e, af.write("/outbox/lapsed"))
	af.clock.Add(31 * time.Minute) // past the 30-minute pending ttl
	d = check(t, e, af.write("/outbox/lapsed"))
	wantApproval(t, d, 403, engine.ReasonApprovalExpired, approval.OutcomeExpired)
	if d.ApprovalID != lapsed.ApprovalID {
		t.Fatalf("expired answers with %s, want %s", d.ApprovalID, lapsed.ApprovalID)
	}
	d = check(t, e, af.write("/outbox/lapsed"))
	wantApproval(t, d, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
	// The denial's window (30 minutes from its request) has passed too.
	d = check(t, e, af.write("/outbox/denied"))
	wantApproval(t, d, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
}

// TestApprovalTTL: an approval with a ttl serves every retry until it
// runs out.
func TestApprovalTTL(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	e := af.f.Engine
	r := engine.Request{Source: engine.SourceAPI, Token: af.mailer, Action: "publish:blog", Resource: "/post/1"}
	first := check(t, e, r)
	af.decide(t, first.ApprovalID, true)
	for range 3 {
		af.clock.Add(2 * time.Minute)
		wantApproval(t, check(t, e, r), 200, engine.ReasonApprovalGranted, approval.OutcomeGranted)
	}
	af.clock.Add(5 * time.Minute) // 11 minutes after the approval
	wantApproval(t, check(t, e, r), 403, engine.ReasonApprovalExpired, approval.OutcomeExpired)
}

// TestApprovalIsBoundToTheRequest: an approval serves exactly the request
// it was given for. A request differing in any one field of the binding
// asks for its own approval, and leaves the approved one unused. Each case
// uses resources of its own, so approvals of one cannot serve another.
func TestApprovalIsBoundToTheRequest(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	e := af.f.Engine
	deleg := delegated(t, e, engine.DelegateRequest{Caller: engine.Request{Token: af.orch}, Delegate: "mailer", Actions: []string{"write:*"}})
	api := func(token, action, resource string, ctx map[string]any) engine.Request {
		return engine.Request{Source: engine.SourceAPI, Token: token, Action: action, Resource: resource, Context: ctx}
	}
	mcp := func(args string) engine.Request {
		return engine.Request{Source: engine.SourceGateway, Token: af.mailer, Method: "POST", Path: "/mcp", Body: callBody("send_email", args)}
	}
	viaChain := api(af.mailer, "write:email", "/chain", nil)
	viaChain.Delegation = deleg
	tests := []struct {
		name          string
		approved, use engine.Request
	}{
		{"resource", api(af.mailer, "write:email", "/res/1", nil), api(af.mailer, "write:email", "/res/2", nil)},
		{"action", api(af.mailer, "write:email", "/act", nil), api(af.mailer, "write:sms", "/act", nil)},
		{"agent", api(af.mailer, "write:email", "/agent", nil), api(af.other, "write:email", "/agent", nil)},
		{"chain", api(af.mailer, "write:email", "/chain", nil), viaChain},
		{"context", api(af.mailer, "write:email", "/ctx", map[string]any{"to": "a@ours.example"}), api(af.mailer, "write:email", "/ctx", map[string]any{"to": "eve@evil.example"})},
		{"arguments", mcp(`{"to":"a@ours.example"}`), mcp(`{"to":"eve@evil.example"}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := check(t, e, tc.approved)
			wantApproval(t, first, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
			af.decide(t, first.ApprovalID, true)
			other := check(t, e, tc.use)
			wantApproval(t, other, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
			if other.ApprovalID == first.ApprovalID {
				t.Fatalf("the approval of one request served another differing in its %s", tc.name)
			}
			wantApproval(t, check(t, e, tc.approved), 200, engine.ReasonApprovalGranted, approval.OutcomeGranted)
		})
	}
}

// TestApprovalMCPCall: a tool call's approval shows the call and its
// arguments as the audit trail records them (redacted), bound by digest.
func TestApprovalMCPCall(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	r := engine.Request{Source: engine.SourceGateway, Token: af.mailer, Method: "POST", Path: "/mcp",
		Body: callBody("send_email", `{"to":"eve@evil.example","password":"hunter2"}`)}
	d := check(t, af.f.Engine, r)
	wantApproval(t, d, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
	a, err := af.f.Store.GetApproval(context.Background(), d.ApprovalID)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := audit.ArgumentsDigest([]byte(`{"to":"eve@evil.example","password":"hunter2"}`))
	if a.Method != "tools/call" || a.Name != "send_email" || a.Action != "call:mail/send_email" || a.ArgumentsDigest != digest ||
		string(a.Arguments) != `{"password":"[redacted]","to":"eve@evil.example"}` || a.Policy != "mail" || a.Rule != "ask" ||
		len(a.Approvers) != 1 || a.Approvers[0] != "security" || a.DecisionID != d.ID || a.TraceID != d.TraceID {
		t.Fatalf("approval %+v", a)
	}
	// The JSON-RPC error carries the approval in its data.
	var resp struct {
		Error struct {
			Data struct {
				ApprovalID  string `json:"approval_id"`
				ApprovalURL string `json:"approval_url"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(d.DenyBody(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Error.Data.ApprovalID != d.ApprovalID || resp.Error.Data.ApprovalURL != "/v1/approvals/"+d.ApprovalID {
		t.Fatalf("JSON-RPC denial %s", d.DenyBody())
	}
	// The same arguments in another order are the same request.
	r.Body = callBody("send_email", `{"password":"hunter2", "to":"eve@evil.example"}`)
	if again := check(t, af.f.Engine, r); again.ApprovalID != d.ApprovalID {
		t.Fatalf("the same arguments respelt asked again: %s", again.ApprovalID)
	}
}

// TestApprovalConcurrentRetries: 20 retries at once of a request approved
// for one use: exactly one is allowed.
func TestApprovalConcurrentRetries(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	e := af.f.Engine
	first := check(t, e, af.write("/race"))
	af.decide(t, first.ApprovalID, true)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
		start   = make(chan struct{})
	)
	for range 20 {
		wg.Go(func() {
			<-start
			r := af.write("/race")
			d, err := e.Check(context.Background(), &r)
			if err != nil {
				t.Errorf("Check: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if d.Allowed {
				allowed++
			}
		})
	}
	close(start)
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d of 20 retries allowed, want exactly 1", allowed)
	}
}

// TestApprovalComesLast: a request something else refuses raises no
// approval: a deny rule, the rate limit.
func TestApprovalComesLast(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	e := af.f.Engine
	burst := engine.Request{Source: engine.SourceAPI, Token: af.mailer, Action: "burst:x", Resource: "/b"}
	wantApproval(t, check(t, e, burst), 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
	for _, tc := range []struct {
		name   string
		r      engine.Request
		status int
		reason string
	}{
		{"rate limited", burst, 429, engine.ReasonRateLimited},
		{"unauthenticated", engine.Request{Source: engine.SourceAPI, Action: "write:email", Resource: "/x"}, 401, engine.ReasonUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, e, tc.r)
			if d.Status != tc.status || d.Reason != tc.reason || d.ApprovalID != "" {
				t.Fatalf("%d %s approval %q; want %d %s and no approval", d.Status, d.Reason, d.ApprovalID, tc.status, tc.reason)
			}
		})
	}
	if got := af.raised.list(); len(got) != 1 {
		t.Fatalf("%d approvals raised, want only the first", len(got))
	}
}

// TestApprovalAuditMode: audit mode records approval_required and lets
// the request through, raising nothing.
func TestApprovalAuditMode(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeAudit)
	d := check(t, af.f.Engine, af.write("/audit"))
	if !d.Allowed || d.Effect != "deny" || d.Reason != engine.ReasonApprovalRequired || d.ApprovalID != "" {
		t.Fatalf("audit mode: %+v", d)
	}
	list, err := af.f.Store.ListApprovals(context.Background(), approval.Filter{})
	if err != nil || len(list) != 0 || len(af.raised.list()) != 0 {
		t.Fatalf("audit mode raised %d approvals (%v), notified %d", len(list), err, len(af.raised.list()))
	}
	recs := records(t, af.f)
	if len(recs) != 1 || recs[0].Approval == nil || recs[0].Approval.ID != "" || recs[0].Reason != engine.ReasonApprovalRequired {
		t.Fatalf("audit mode records %+v", recs)
	}
}

// TestApprovalStoreDown: with the approval store failing, the request is
// not decided (ErrInternal: a 503 at every adapter), never allowed.
func TestApprovalStoreDown(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	r := af.write("/down")
	check(t, af.f.Engine, engine.Request{Source: engine.SourceAPI, Token: af.mailer, Action: "read:x", Resource: "/warm"}) // caches the agent
	if err := af.f.Store.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := af.f.Engine.Check(context.Background(), &r)
	if !errors.Is(err, engine.ErrInternal) || d.Allowed {
		t.Fatalf("Check with the store down = %+v, %v; want ErrInternal", d, err)
	}
}

// TestApprovalRendered: a 403 about an approval names it in the deny body
// and the X-MeshGuard-Approval header, which the adapters send.
func TestApprovalRendered(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	d := check(t, af.f.Engine, af.write("/render"))
	var body struct {
		Reason      string `json:"reason"`
		ApprovalID  string `json:"approval_id"`
		ApprovalURL string `json:"approval_url"`
	}
	if err := json.Unmarshal(d.DenyBody(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Reason != "approval_required" || body.ApprovalID != d.ApprovalID || body.ApprovalURL != "/v1/approvals/"+d.ApprovalID {
		t.Fatalf("deny body %s", d.DenyBody())
	}
	found := false
	for _, h := range d.ResponseHeaders() {
		found = found || (h.Name == engine.HeaderApproval && h.Value == d.ApprovalID)
	}
	if !found {
		t.Fatalf("response headers %v lack %s", d.ResponseHeaders(), engine.HeaderApproval)
	}
}

// TestApprovalHeaderOnlyCall: a tool call decided from its headers alone
// cannot be approved — its arguments are unknown, so an approval would
// serve any — and raises nothing.
func TestApprovalHeaderOnlyCall(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	r := engine.Request{Source: engine.SourceGateway, Token: af.mailer, Method: "POST", Path: "/mcp",
		Headers: edge.MapHeaders{"mcp-method": "tools/call", "mcp-name": "send_email", "mcp-protocol-version": agentproto.HeaderRevision}}
	d := check(t, af.f.Engine, r)
	if d.Status != 403 || d.Reason != engine.ReasonApprovalRequired || d.ApprovalID != "" || len(af.raised.list()) != 0 {
		t.Fatalf("header-only call: %d %s approval %q, %d raised", d.Status, d.Reason, d.ApprovalID, len(af.raised.list()))
	}
}

// TestApprovalReasonsArePrefixed: the audit trail and replay tell an
// approval step's decision by its reason (approval.IsReason); a reason
// code added without the prefix would be replayed as the wrong effect.
func TestApprovalReasonsArePrefixed(t *testing.T) {
	for _, r := range []string{engine.ReasonApprovalRequired, engine.ReasonApprovalGranted, engine.ReasonApprovalDenied,
		engine.ReasonApprovalExpired, engine.ReasonApprovalLimit} {
		if !approval.IsReason(r) {
			t.Errorf("%s: not an approval reason to approval.IsReason", r)
		}
	}
	if approval.IsReason(engine.ReasonUnauthorized) {
		t.Error("unauthorized counts as an approval reason")
	}
}
