package policy

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// meshPolicies is a small mesh: an orchestrator that may delegate two hops
// with a read/write ceiling, researchers that may delegate one hop with a
// read-only ceiling, and emailers that may send email.
var meshPolicies = []string{
	lines(
		"name: orchestrators",
		"appliesTo: {tags: [orchestrator]}",
		"rules: [{name: all-work, effect: allow, actions: ['read:*', 'write:*']}]",
		"delegation: {maxDepth: 2, permissionCeiling: ['read:*', 'write:email']}",
	),
	lines(
		"name: researchers",
		"appliesTo: {tags: [researcher]}",
		"rules: [{name: reads, effect: allow, actions: ['read:*', 'write:email']}]",
		"delegation: {maxDepth: 1}",
	),
	lines(
		"name: emailers",
		"appliesTo: {tags: [emailer]}",
		"rules:",
		"  - {name: send, effect: allow, actions: ['write:email', 'read:contacts']}",
		"  - {name: no-admin, effect: deny, actions: ['admin:*']}",
	),
	lines(
		"name: loose",
		"appliesTo: {tags: [loose]}",
		"rules: [{name: anything, effect: allow, actions: ['*']}]",
		"delegation: {maxDepth: 5}",
	),
}

func TestDelegationChecks(t *testing.T) {
	s := mustSet(t, meshPolicies...)
	orch := agent("orchestrator", trust.Trusted, "orchestrator")
	res := agent("researcher", trust.Verified, "researcher")
	mail := agent("emailer", trust.Verified, "emailer")
	plain := agent("plain", trust.Verified, "emailer") // covered, but no delegation block
	looseN := func(n int) []Subject {
		out := make([]Subject, n)
		for i := range out {
			out[i] = agent("loose"+string(rune('a'+i)), trust.Verified, "loose")
		}
		return out
	}
	revoked := res
	revoked.Active = false
	untrusted := agent("shady", trust.Untrusted, "loose")
	resByID := Subject{ID: res.ID, Name: "", Tier: trust.Verified, Tags: res.Tags, Active: true}

	tests := []struct {
		name  string
		actor Subject
		chain []Subject
		act   string
		scope []string
		want  want
	}{
		{"one hop within ceiling", mail, []Subject{orch}, "write:email", nil, want{Allow, ReasonRuleAllow, "emailers", "send"}},
		{"two hops within every depth", mail, []Subject{orch, res}, "write:email", nil, want{Allow, ReasonRuleAllow, "emailers", "send"}},
		{"actor's own policy denies first", mail, []Subject{orch}, "admin:users", nil, want{Deny, ReasonRuleDeny, "emailers", "no-admin"}},
		{"actor's own policy has no rule", mail, []Subject{orch}, "delete:x", nil, want{Deny, ReasonNoMatchingRule, "emailers", ""}},
		{"delegator allowed the action itself", mail, []Subject{res}, "read:contacts", nil, want{Allow, ReasonRuleAllow, "emailers", "send"}},
		{"member denied: researcher may not write:calendar", agent("cal", trust.Verified, "loose"), []Subject{res}, "write:calendar", nil, want{Deny, ReasonDelegationMemberDenied, "researchers", ""}},
		{"ceiling: orchestrator's ceiling excludes write:files", agent("w", trust.Verified, "loose"), []Subject{orch}, "write:files", nil, want{Deny, ReasonDelegationCeiling, "orchestrators", ""}},
		{"block without ceiling adds none", agent("w", trust.Verified, "loose"), []Subject{res}, "read:files", nil, want{Allow, ReasonRuleAllow, "loose", "anything"}},
		{"depth: researcher allows one hand-off, this is two", mail, []Subject{res, agent("l", trust.Verified, "loose")}, "write:email", nil, want{Deny, ReasonDelegationDepth, "researchers", ""}},
		{"depth: orchestrator allows two hand-offs, this is three", mail, append([]Subject{orch}, looseN(2)...), "write:email", nil, want{Deny, ReasonDelegationDepth, "orchestrators", ""}},
		{"not permitted: no delegation block covers the delegator", mail, []Subject{plain}, "write:email", nil, want{Deny, ReasonDelegationNotPermitted, "", ""}},
		{"five delegating agents is the cap", agent("z", trust.Verified, "loose"), looseN(5), "read:x", nil, want{Allow, ReasonRuleAllow, "loose", "anything"}},
		{"six delegating agents exceeds the cap", agent("z", trust.Verified, "loose"), looseN(6), "read:x", nil, want{Deny, ReasonDelegationDepth, "", ""}},
		// The cap is checked before D's own policy: with a denying actor only
		// the cap can give delegation_depth.
		{"the cap comes before the actor's own policy", mail, looseN(6), "admin:users", nil, want{Deny, ReasonDelegationDepth, "", ""}},
		{"revoked member", mail, []Subject{orch, revoked}, "write:email", nil, want{Deny, ReasonDelegationRevoked, "", ""}},
		{"cycle by id", mail, []Subject{orch, res, resByID}, "write:email", nil, want{Deny, ReasonDelegationCycle, "", ""}},
		{"actor already in the chain is a cycle", mail, []Subject{orch, mail}, "write:email", nil, want{Deny, ReasonDelegationCycle, "", ""}},
		{"untrusted member", mail, []Subject{untrusted}, "write:email", nil, want{Deny, ReasonDelegationUntrusted, "", ""}},
		{"revoked is reported before cycle and untrusted", mail, []Subject{untrusted, revoked, revoked}, "write:email", nil, want{Deny, ReasonDelegationRevoked, "", ""}},
		{"cycle is reported before untrusted", mail, []Subject{untrusted, res, res}, "write:email", nil, want{Deny, ReasonDelegationCycle, "", ""}},
		{"untrusted is reported before the depth cap", mail, append(looseN(6), untrusted), "write:email", nil, want{Deny, ReasonDelegationUntrusted, "", ""}},
		{"scope holds", mail, []Subject{orch}, "write:email", []string{"write:*"}, want{Allow, ReasonRuleAllow, "emailers", "send"}},
		{"scope excludes the action", mail, []Subject{orch}, "read:contacts", []string{"write:email"}, want{Deny, ReasonDelegationScope, "", ""}},
		{"ceiling is checked before scope", agent("w", trust.Verified, "loose"), []Subject{orch}, "write:files", []string{"read:*"}, want{Deny, ReasonDelegationCeiling, "orchestrators", ""}},
		{"no chain: no delegation checks", mail, nil, "write:email", nil, want{Allow, ReasonRuleAllow, "emailers", "send"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, s, Input{Agent: tc.actor, Chain: tc.chain, Action: tc.act, Scope: tc.scope})
			expect(t, d, tc.want)
			if !d.Allowed() && d.Message == "" {
				t.Fatal("a denial must say why")
			}
		})
	}
}

func TestDelegationNotPermittedNamesTheFix(t *testing.T) {
	s := mustSet(t, meshPolicies...)
	d := s.Evaluate(&Input{Agent: agent("emailer", trust.Verified, "emailer"), Chain: []Subject{agent("plain", trust.Verified, "emailer")}, Action: "write:email"})
	if !strings.Contains(d.Message, "delegation") || !strings.Contains(d.Message, "plain") {
		t.Fatalf("message %q should name the agent and the delegation block to add", d.Message)
	}
}

func TestHandOff(t *testing.T) {
	s := mustSet(t, meshPolicies...)
	orch := agent("orchestrator", trust.Trusted, "orchestrator")
	res := agent("researcher", trust.Verified, "researcher")
	mail := agent("emailer", trust.Verified, "emailer")
	shady := agent("shady", trust.Untrusted, "orchestrator")
	gone := orch
	gone.Active = false
	tests := []struct {
		name     string
		chain    []Subject
		from, to Subject
		want     string
	}{
		{"root hands on", nil, orch, res, ""},
		{"second hop within depth", []Subject{orch}, res, mail, ""},
		{"agent without a delegation block may not hand on", nil, mail, res, ReasonDelegationNotPermitted},
		{"researcher's one hop is used up", []Subject{res}, agent("l", trust.Verified, "loose"), mail, ReasonDelegationDepth},
		{"untrusted caller may not hand on", nil, shady, res, ReasonDelegationUntrusted},
		{"handing back to an earlier agent is a cycle", []Subject{orch}, res, orch, ReasonDelegationCycle},
		{"revoked earlier agent", []Subject{gone}, res, mail, ReasonDelegationRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := s.HandOff(tc.chain, tc.from, tc.to)
			if tc.want == "" {
				if !d.Allowed() {
					t.Fatalf("denied: %s %s", d.Reason, d.Message)
				}
				return
			}
			if d.Allowed() || d.Reason != tc.want {
				t.Fatalf("got %s/%s (%s), want deny/%s", d.Effect, d.Reason, d.Message, tc.want)
			}
		})
	}
}

func TestExplainTrace(t *testing.T) {
	s := mustSet(t, append([]string{specExample}, meshPolicies...)...)
	d := s.Evaluate(&Input{Agent: agent("helper", trust.Verified, "emailer"), Action: "write:email",
		Context: map[string]any{"recipient": "bob@example.com"}, Chain: []Subject{agent("orchestrator", trust.Privileged, "orchestrator")}, Explain: true})
	if !d.Allowed() || d.Explain == nil {
		t.Fatalf("want an explained allow, got %+v", d)
	}
	byName := map[string]PolicyExplanation{}
	for _, p := range d.Explain.Policies {
		byName[p.Name] = p
	}
	sup := byName["support-agents"]
	if !sup.Covered || sup.Effect != Deny || !sup.Default {
		t.Fatalf("support-agents: %+v; want covered, default deny", sup)
	}
	if got := sup.Rules[0].Result; got != ruleCondFailedPfx+"context.recipient" {
		t.Fatalf("no-external-email result = %q", got)
	}
	if got := sup.Rules[1].Result; got != RuleActionMissed {
		t.Fatalf("reads result = %q", got)
	}
	if em := byName["emailers"]; !em.Covered || em.Effect != Allow || em.Rules[0].Result != RuleMatched || em.Rules[1].Result != RuleNotReached {
		t.Fatalf("emailers: %+v", em)
	}
	if orch := byName["orchestrators"]; orch.Covered || !strings.HasPrefix(orch.Coverage, "not covered") {
		t.Fatalf("orchestrators: %+v", orch)
	}
	if len(d.Explain.Delegation) == 0 || !d.Explain.Delegation[len(d.Explain.Delegation)-1].Passed {
		t.Fatalf("delegation steps: %+v", d.Explain.Delegation)
	}
}
