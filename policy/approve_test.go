package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/meshguard/meshguard/trust"
)

// TestApproveCombines: deny beats approve beats allow across policies;
// within a policy the first matching rule decides, approve or not.
func TestApproveCombines(t *testing.T) {
	const (
		approveMail = "name: a-approve\nrules:\n  - {name: outside, effect: approve, actions: ['write:email'], approvers: [security], ttl: 2h}\n"
		allowMail   = "name: b-allow\nrules:\n  - {name: mail, effect: allow, actions: ['write:*']}\n"
		denyMail    = "name: c-deny\nrules:\n  - {name: never, effect: deny, actions: ['write:email']}\ndefaultEffect: allow\n"
		firstAllow  = "name: d-first\nrules:\n  - {name: ok, effect: allow, actions: ['write:email']}\n  - {name: ask, effect: approve, actions: ['write:*']}\n"
		firstAsk    = "name: e-first\nrules:\n  - {name: ask, effect: approve, actions: ['write:*']}\n  - {name: ok, effect: allow, actions: ['write:email']}\n"
	)
	mailer := agent("mailer", trust.Verified)
	for _, tc := range []struct {
		name string
		docs []string
		want want
	}{
		{"approve alone", []string{approveMail}, want{Approve, ReasonApprovalRequired, "a-approve", "outside"}},
		{"approve beats allow", []string{approveMail, allowMail}, want{Approve, ReasonApprovalRequired, "a-approve", "outside"}},
		{"deny beats approve", []string{approveMail, allowMail, denyMail}, want{Deny, ReasonRuleDeny, "c-deny", "never"}},
		{"first match allows", []string{firstAllow}, want{Allow, ReasonRuleAllow, "d-first", "ok"}},
		{"first match asks", []string{firstAsk}, want{Approve, ReasonApprovalRequired, "e-first", "ask"}},
		{"an approve rule's miss falls through", []string{approveMail}, want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, tc.docs...)
			in := Input{Agent: mailer, Action: "write:email"}
			if tc.want == (want{}) {
				in.Action = "write:doc"
				tc.want = want{Deny, ReasonNoMatchingRule, "a-approve", ""}
			}
			expect(t, check(t, s, in), tc.want)
		})
	}
	d := check(t, mustSet(t, approveMail, allowMail), Input{Agent: mailer, Action: "write:email"})
	if d.ApproveRule == nil || d.ApproveRule.TTL != 2*time.Hour || !slices.Equal(d.ApproveRule.Approvers, []string{"security"}) || d.Allowed() {
		t.Fatalf("approve decision: rule %+v allowed %v", d.ApproveRule, d.Allowed())
	}
}

// TestApproveKeepsLimits: an approve decision carries the limits the
// request counts against, so the engine refuses what they refuse before
// asking anyone.
func TestApproveKeepsLimits(t *testing.T) {
	s := mustSet(t, "name: p\nrateLimits: {requestsPerMinute: 10}\nrules:\n  - {name: ask, effect: approve, actions: ['*'], conditions: {rateLimit: {requestsPerMinute: 2}}}\n")
	d := check(t, s, Input{Agent: agent("a", trust.Verified), Action: "write:x"})
	want := []Limit{{Key: "p/ask", PerMinute: 2}, {Key: "p", PerMinute: 10}}
	if d.Effect != Approve || !slices.Equal(d.Limits, want) {
		t.Fatalf("limits %+v, want %+v", d.Limits, want)
	}
}

// TestApproveConditionsReadAsDeny: an approve rule applies when in doubt,
// as a deny rule does: one element of a list, unknown arguments.
func TestApproveConditionsReadAsDeny(t *testing.T) {
	s := mustSet(t, "name: p\nrules:\n"+
		"  - {name: outsiders, effect: approve, actions: ['write:email'], conditions: {context: {to: {not_matches: '*@example.com'}}}}\n"+
		"  - {name: args, effect: approve, actions: ['call:mail/send'], conditions: {context: {arguments.to: {not_matches: '*@example.com'}}}}\n"+
		"  - {name: rest, effect: allow, actions: ['*']}\n")
	a := agent("a", trust.Verified)
	for _, tc := range []struct {
		name string
		in   Input
		want Effect
	}{
		{"our address", Input{Agent: a, Action: "write:email", Context: map[string]any{"to": "b@example.com"}}, Allow},
		{"an outsider", Input{Agent: a, Action: "write:email", Context: map[string]any{"to": "x@rival.example"}}, Approve},
		{"one outsider in a list", Input{Agent: a, Action: "write:email", Context: map[string]any{"to": []any{"b@example.com", "x@rival.example"}}}, Approve},
		{"arguments unknown", Input{Agent: a, Action: "call:mail/send", ArgumentsUnknown: true}, Approve},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := check(t, s, tc.in); d.Effect != tc.want {
				t.Fatalf("%s/%s, want %s", d.Effect, d.Reason, tc.want)
			}
		})
	}
}

// TestApproveChain: the actor's approve covers the chain's request (the
// delegation checks still run), while an earlier member must be allowed
// outright: its approve is not an allow.
func TestApproveChain(t *testing.T) {
	s := mustSet(t,
		"name: orch\nappliesTo: {tags: [orch]}\ndelegation: {maxDepth: 2}\nrules:\n  - {name: mail, effect: allow, actions: ['write:email']}\n",
		"name: orch-asks\nappliesTo: {tags: [orch-asks]}\ndelegation: {maxDepth: 2}\nrules:\n  - {name: ask, effect: approve, actions: ['write:email']}\n",
		"name: mailer\nappliesTo: {tags: [mailer]}\nrules:\n  - {name: ask, effect: approve, actions: ['write:email']}\n  - {name: rest, effect: allow, actions: ['read:*']}\n",
	)
	mailer := agent("mailer", trust.Verified, "mailer")
	for _, tc := range []struct {
		name  string
		chain []Subject
		scope []string
		want  want
	}{
		{"member allows, actor asks", []Subject{agent("orch", trust.Trusted, "orch")}, nil, want{Approve, ReasonApprovalRequired, "mailer", "ask"}},
		{"member asks", []Subject{agent("orch", trust.Trusted, "orch-asks")}, nil, want{Deny, ReasonDelegationMemberDenied, "orch-asks", "ask"}},
		{"outside the token scope", []Subject{agent("orch", trust.Trusted, "orch")}, []string{"read:*"}, want{Deny, ReasonDelegationScope, "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, check(t, s, Input{Agent: mailer, Action: "write:email", Chain: tc.chain, Scope: tc.scope}), tc.want)
		})
	}
}

// TestApproveJSONRoundTrip: an approve rule's approvers and ttl survive
// the JSON form the wasm filter and the admin API carry.
func TestApproveJSONRoundTrip(t *testing.T) {
	s := mustSet(t, "name: p\nrules:\n  - {name: ask, effect: approve, actions: ['write:*'], approvers: [security, ops], ttl: 90m}\n  - {name: once, effect: approve, actions: ['read:*']}\n")
	checkJSONRoundTrip(t, s.Policies(), s)
	js, err := s.Policies()[0].JSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("back.json", js)
	if err != nil {
		t.Fatal(err)
	}
	if r := back[0].Rules[0]; r.TTL != 90*time.Minute || !slices.Equal(r.Approvers, []string{"security", "ops"}) {
		t.Fatalf("after the round trip: %+v\n%s", r, js)
	}
	if back[0].Rules[1].TTL != 0 {
		t.Fatalf("a use-once rule came back with ttl %v", back[0].Rules[1].TTL)
	}
}

// TestApproveTestCases: offline test files may expect approve.
func TestApproveTestCases(t *testing.T) {
	dir, err := ParseAgents("agents.yaml", []byte(agentsYAML))
	if err != nil {
		t.Fatal(err)
	}
	cases, err := ParseTests("tests.yaml", []byte(`
tests:
  - {name: asks, agent: emailer, action: "write:email", expect: approve, expectReason: approval_required}
  - {name: not allowed, agent: emailer, action: "write:email", expect: allow}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	s := mustSet(t, "name: p\nrules:\n  - {name: ask, effect: approve, actions: ['write:email']}\n")
	r := RunTests(s, cases, time.Time{}, false)
	if !r.Results[0].Passed || r.Results[1].Passed || r.Results[0].Decision != Approve {
		t.Fatalf("results %+v", r.Results)
	}
}
