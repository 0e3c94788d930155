package policy

import (
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// specExample is a policy using every field, like the annotated example
// at the top of docs/policies.md.
const specExample = `
name: support-agents
version: "1.0"
description: What support agents may do
appliesTo:            # an agent is covered if ANY listed selector matches; empty = all agents
  trustTiers: [verified, trusted]
  tags: [support]
  agentIds: [agent_abc123]     # ids or names
rules:                # evaluated in order; the first rule that matches decides for this policy
  - name: no-external-email
    effect: deny
    actions: ["write:email"]
    conditions:
      context: { recipient: { not_matches: "*@example.com" } }
    reason: External email needs a privileged agent
  - name: reads
    effect: allow
    actions: ["read:*"]
defaultEffect: deny   # when no rule matches (default deny)
delegation:
  maxDepth: 2               # how many hops below an agent covered by this policy a task may travel
  permissionCeiling: ["read:*"]   # the most any delegate acting for such an agent may do
rateLimits: { requestsPerMinute: 60, requestsPerHour: 1000 }   # per covered agent
`

func TestSpecExamplePolicy(t *testing.T) {
	s := mustSet(t, specExample)
	verified := agent("helper", trust.Verified)
	tests := []struct {
		name string
		in   Input
		want want
	}{
		{"external email denied with the rule's reason",
			Input{Agent: verified, Action: "write:email", Context: map[string]any{"recipient": "eve@evil.test"}},
			want{Deny, ReasonRuleDeny, "support-agents", "no-external-email"}},
		{"missing recipient still denied (not_matches holds for an absent key)",
			Input{Agent: verified, Action: "write:email"},
			want{Deny, ReasonRuleDeny, "support-agents", "no-external-email"}},
		{"internal email falls through to the default deny",
			Input{Agent: verified, Action: "write:email", Context: map[string]any{"recipient": "bob@example.com"}},
			want{Deny, ReasonNoMatchingRule, "support-agents", ""}},
		{"reads allowed",
			Input{Agent: verified, Action: "read:docs"},
			want{Allow, ReasonRuleAllow, "support-agents", "reads"}},
		{"read with nested resource path allowed (* crosses / and :)",
			Input{Agent: verified, Action: "read:kb/articles:42"},
			want{Allow, ReasonRuleAllow, "support-agents", "reads"}},
		{"trusted tier is covered",
			Input{Agent: agent("t", trust.Trusted), Action: "read:docs"},
			want{Allow, ReasonRuleAllow, "support-agents", "reads"}},
		{"tiers are exact: privileged is not covered by [verified, trusted]",
			Input{Agent: agent("p", trust.Privileged), Action: "read:docs"},
			want{Deny, ReasonNoPolicy, "", ""}},
		{"untrusted agent with the support tag is covered",
			Input{Agent: agent("u", trust.Untrusted, "support"), Action: "read:docs"},
			want{Allow, ReasonRuleAllow, "support-agents", "reads"}},
		{"covered by id",
			Input{Agent: Subject{ID: "agent_abc123", Name: "x", Active: true}, Action: "read:docs"},
			want{Allow, ReasonRuleAllow, "support-agents", "reads"}},
		{"uncovered agent gets no_policy",
			Input{Agent: agent("u", trust.Untrusted, "sales"), Action: "read:docs"},
			want{Deny, ReasonNoPolicy, "", ""}},
		{"case-sensitive actions",
			Input{Agent: verified, Action: "Read:docs"},
			want{Deny, ReasonNoMatchingRule, "support-agents", ""}},
		{"revoked agent denied",
			Input{Agent: Subject{ID: "agent_x", Name: "x", Tier: trust.Verified}, Action: "read:docs"},
			want{Deny, ReasonAgentRevoked, "", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, check(t, s, tc.in), tc.want)
		})
	}
}

func TestSpecExampleDecisionCarries(t *testing.T) {
	s := mustSet(t, specExample)
	d := s.Evaluate(&Input{Agent: agent("helper", trust.Trusted), Action: "read:docs"})
	if d.Tier != trust.Trusted || d.Revision != s.Revision() || d.Revision == "" {
		t.Fatalf("decision tier=%v revision=%q; want trusted and %q", d.Tier, d.Revision, s.Revision())
	}
	if len(d.Limits) != 1 || d.Limits[0] != (Limit{Key: "support-agents", PerMinute: 60, PerHour: 1000}) {
		t.Fatalf("limits = %+v; want the policy's rateLimits", d.Limits)
	}
	d = s.Evaluate(&Input{Agent: agent("helper", trust.Trusted), Action: "write:email"})
	if d.Message != "External email needs a privileged agent" {
		t.Fatalf("deny message = %q; want the rule's reason", d.Message)
	}
	if d.Limits != nil {
		t.Fatalf("a denied request counts against no limit, got %+v", d.Limits)
	}
}

func TestAppliesToEmptyCoversEveryone(t *testing.T) {
	for _, doc := range []string{
		"name: all\nrules: [{effect: allow, actions: ['*']}]",
		"name: all\nappliesTo: {trustTiers: [], tags: [], agentIds: []}\nrules: [{effect: allow, actions: ['*']}]",
	} {
		s := mustSet(t, doc)
		expect(t, check(t, s, Input{Agent: agent("anyone", trust.Untrusted), Action: "x:y"}), want{Allow, ReasonRuleAllow, "all", "rule-1"})
	}
}

func TestAppliesToByName(t *testing.T) {
	s := mustSet(t, "name: p\nappliesTo: {agentIds: [researcher]}\nrules: [{effect: allow, actions: ['read:*']}]")
	expect(t, check(t, s, Input{Agent: agent("researcher", trust.Verified), Action: "read:x"}), want{Allow, ReasonRuleAllow, "p", "rule-1"})
	expect(t, check(t, s, Input{Agent: agent("emailer", trust.Verified), Action: "read:x"}), want{Deny, ReasonNoPolicy, "", ""})
}

func TestFirstMatchWithinPolicy(t *testing.T) {
	s := mustSet(t, lines(
		"name: p",
		"rules:",
		"  - {name: allow-report, effect: allow, actions: ['read:reports/q1']}",
		"  - {name: deny-reports, effect: deny, actions: ['read:reports/*']}",
		"  - {name: allow-read, effect: allow, actions: ['read:*']}",
	))
	a := agent("a", trust.Verified)
	expect(t, check(t, s, Input{Agent: a, Action: "read:reports/q1"}), want{Allow, ReasonRuleAllow, "p", "allow-report"})
	expect(t, check(t, s, Input{Agent: a, Action: "read:reports/q2"}), want{Deny, ReasonRuleDeny, "p", "deny-reports"})
	expect(t, check(t, s, Input{Agent: a, Action: "read:docs"}), want{Allow, ReasonRuleAllow, "p", "allow-read"})
}

func TestCombinationAcrossPolicies(t *testing.T) {
	denyB := "name: b-deny\nrules: [{name: no-delete, effect: deny, actions: ['delete:*']}]\ndefaultEffect: deny"
	denyC := "name: c-deny\nrules: [{name: no-delete-either, effect: deny, actions: ['delete:*']}]"
	allowA := "name: a-allow\nrules: [{name: anything, effect: allow, actions: ['*']}]"
	defAllowD := "name: d-open\nrules: []\ndefaultEffect: allow"
	defAllowE := "name: e-open\ndefaultEffect: allow"
	defDenyF := "name: f-closed\nrules: [{effect: allow, actions: ['read:nothing']}]"
	a := agent("a", trust.Verified)
	tests := []struct {
		name   string
		docs   []string
		action string
		want   want
	}{
		{"a deny anywhere wins over an allow elsewhere", []string{allowA, denyB}, "delete:x", want{Deny, ReasonRuleDeny, "b-deny", "no-delete"}},
		{"the first denying policy by name is reported", []string{denyC, allowA, denyB}, "delete:x", want{Deny, ReasonRuleDeny, "b-deny", "no-delete"}},
		{"an allow beats another policy's default deny", []string{allowA, denyB}, "read:x", want{Allow, ReasonRuleAllow, "a-allow", "anything"}},
		{"all defaults allow: allowed", []string{defAllowD, defAllowE}, "read:x", want{Allow, ReasonDefaultAllow, "d-open", ""}},
		{"one default deny among defaults: denied", []string{defAllowD, defDenyF}, "read:x", want{Deny, ReasonNoMatchingRule, "f-closed", ""}},
		{"default deny is the default", []string{defDenyF}, "read:x", want{Deny, ReasonNoMatchingRule, "f-closed", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, tc.docs...)
			expect(t, check(t, s, Input{Agent: a, Action: tc.action}), tc.want)
		})
	}
}

func TestRuleRateLimitReported(t *testing.T) {
	s := mustSet(t, lines(
		"name: p",
		"rules:",
		"  - name: sends",
		"    effect: allow",
		"    actions: ['write:email']",
		"    conditions: {rateLimit: {requestsPerMinute: 5}}",
	))
	d := check(t, s, Input{Agent: agent("a", trust.Verified), Action: "write:email"})
	if len(d.Limits) != 1 || d.Limits[0] != (Limit{Key: "p/sends", PerMinute: 5}) {
		t.Fatalf("limits = %+v", d.Limits)
	}
}

func TestRevisionIgnoresLayout(t *testing.T) {
	a := mustSet(t, "name: p\nrules: [{name: r, effect: allow, actions: ['read:*']}]")
	b := mustSet(t, "# a comment\nname:   p\nrules:\n  - name: r\n    effect: allow\n    actions:\n      - read:*\n")
	c := mustSet(t, "name: p\nrules: [{name: r, effect: allow, actions: ['read:x*']}]")
	if a.Revision() != b.Revision() {
		t.Fatalf("same policy, different revision: %s vs %s", a.Revision(), b.Revision())
	}
	if a.Revision() == c.Revision() {
		t.Fatal("different policies share a revision")
	}
}
