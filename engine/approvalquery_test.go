package engine_test

import (
	"testing"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/engine"
)

// TestApprovalBindsTheQuery: an approval of a proxied request is bound to
// its query as sent, read by a policy or not: the upstream acts on it. The
// approval of `POST /outbox?to=ann@ours.example` does not serve
// `?to=eve@evil.example` (nor a second parameter added); the same request
// again uses it. Before, only the query parameters some policy read were
// bound, so with no rule on query.to the approval of one recipient served
// any other.
func TestApprovalBindsTheQuery(t *testing.T) {
	af := newApprovalFixture(t, engine.ModeEnforce)
	e := af.f.Engine
	post := func(target string) engine.Request {
		return engine.Request{Source: engine.SourceGateway, Token: af.mailer, Method: "POST", Path: target}
	}
	tests := []struct {
		name          string
		approved, use string
	}{
		{"another value", "/outbox/q1?to=ann@ours.example", "/outbox/q1?to=eve@evil.example"},
		{"a parameter added", "/outbox/q2?to=ann@ours.example", "/outbox/q2?to=ann@ours.example&bcc=eve@evil.example"},
		{"a query added", "/outbox/q3", "/outbox/q3?to=eve@evil.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := check(t, e, post(tc.approved))
			wantApproval(t, first, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
			af.decide(t, first.ApprovalID, true)
			other := check(t, e, post(tc.use))
			if other.Allowed || other.ApprovalID == first.ApprovalID {
				t.Fatalf("the approval of %s served %s: %d %s %s", tc.approved, tc.use, other.Status, other.Reason, other.ApprovalID)
			}
			wantApproval(t, check(t, e, post(tc.approved)), 200, engine.ReasonApprovalGranted, approval.OutcomeGranted)
		})
	}
}
