package main

import (
	"context"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/policy"
)

// TestDemo runs the whole walkthrough of `make demo` against the example
// policies and checks that every step ends the way the tour says it does.
func TestDemo(t *testing.T) {
	var out strings.Builder
	var d []seen
	if err := run(context.Background(), &out, options{policies: "../policies", anyPort: true, record: &d}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	want := []struct {
		status int
		reason string
		minted bool
	}{
		{200, policy.ReasonRuleAllow, true},               // orchestrator → researcher
		{200, policy.ReasonRuleAllow, true},               // researcher → emailer
		{200, policy.ReasonRuleAllow, false},              // emailer acts for both
		{403, policy.ReasonDelegationCeiling, false},      // ceiling
		{200, policy.ReasonRuleAllow, true},               // researcher → orchestrator
		{403, policy.ReasonDelegationDepth, false},        // depth
		{403, policy.ReasonDelegationNotPermitted, false}, // emailer may not delegate
		{200, "", false},                                  // gateway: allowed, upstream answers
		{403, policy.ReasonNoMatchingRule, false},         // gateway: delete denied
		{401, "unauthorized", false},                      // gateway: no credential
		{403, policy.ReasonDelegationRevoked, false},      // revoked member
		{401, "agent_revoked", false},                     // revoked actor
		{403, "approval_required", false},                 // a deploy waits for a person
		{200, "approval_granted", false},                  // approved with the CLI: allowed once
	}
	if len(d) != len(want) {
		t.Fatalf("%d decisions, want %d\n%s", len(d), len(want), out.String())
	}
	for i, w := range want {
		if d[i].status != w.status || d[i].reason != w.reason || (d[i].delegation != "") != w.minted {
			t.Errorf("step %d %q: got %d %s minted=%v, want %d %s minted=%v", i, d[i].step, d[i].status, d[i].reason, d[i].delegation != "", w.status, w.reason, w.minted)
		}
	}
	// The trail: the chain as a tree, the denials, and a verified chain.
	for _, want := range []string{
		// The three hops, and the two denials made with the chain's
		// delegation tokens (ceiling, revoked member): the tokens carry
		// the chain's trace, so they join it without a traceparent.
		"trace " + demoTrace + ": 5 decisions",
		"├─ DENY write:notes/plan → notes.internal (delegation_ceiling",
		"└─ DENY read:contacts → crm.internal (delegation_revoked)",
		"└─ delegated to researcher (",
		"└─ delegated to emailer (",
		"delete:contacts/42",
		// Human approval: listed, approved with the CLI, and each step
		// in the trail under the deploy's trace.
		"pending  deployer  deploy:prod/web",
		"approved by demo (agent deployer",
		"approval_required deploys/production  approval=",
		"approval:approve  approval_approved deploys/production  approval=",
		"approval_granted deploys/production  approval=",
		"✓ audit trail intact: 15 records verified",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out.String())
	}
}
