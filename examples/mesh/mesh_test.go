package main

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/policy"
)

// TestMesh runs `make mesh` — MeshGuard, the Python orchestrator, the Go
// researcher and the TypeScript emailer as real processes — and checks the
// story it tells: the chain allowed hop by hop and recorded as one chain,
// the ceiling denial, and the revoked agent's 401.
func TestMesh(t *testing.T) {
	for _, tool := range []string{"python3", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the mesh needs %s on PATH (the orchestrator is Python, the emailer TypeScript): %v", tool, err)
		}
	}
	var buf strings.Builder
	got, err := run(context.Background(), options{out: &buf, policies: "policies", dir: "."})
	if err != nil {
		t.Fatalf("mesh: %v\n%s", err, buf.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(buf.String())
		}
	})
	orch, res, em := got.ids["orchestrator"], got.ids["researcher"], got.ids["emailer"]

	// What the agents reported back up the chain.
	type step struct{ agent, action, outcome, reason string }
	var steps []step
	for _, s := range got.chain.Steps {
		steps = append(steps, step{s.Agent, s.Action, s.Outcome, s.Reason})
	}
	wantSteps := []step{
		{"orchestrator", "delegate:researcher", "minted", ""},
		{"researcher", "read:papers", "allowed", ""},
		{"researcher", "delegate:emailer", "minted", ""},
		{"emailer", "write:email", "allowed", ""},
		{"emailer", "write:notes/drafts/report", "denied", policy.ReasonDelegationCeiling},
	}
	if got.chain.Error != nil || !slices.Equal(steps, wantSteps) {
		t.Errorf("the chain's steps:\n got %+v (error %+v)\nwant %+v", steps, got.chain.Error, wantSteps)
	}

	// What MeshGuard recorded: each hop decided, under one trace, with the chain.
	wantRecords := []struct {
		agent, action, decision, reason string
		status                          int
		chain                           []string
	}{
		{orch, "delegate:researcher", "allow", policy.ReasonRuleAllow, 201, []string{orch}},
		{res, "read:papers", "allow", policy.ReasonRuleAllow, 200, []string{orch, res}},
		{res, "delegate:emailer", "allow", policy.ReasonRuleAllow, 201, []string{orch, res}},
		{em, "write:email", "allow", policy.ReasonRuleAllow, 200, []string{orch, res, em}},
		{em, "write:notes/drafts/report", "deny", policy.ReasonDelegationCeiling, 403, []string{orch, res, em}},
	}
	if len(got.records) != len(wantRecords) {
		t.Fatalf("trace %s: %d records, want %d", got.chain.TraceID, len(got.records), len(wantRecords))
	}
	for i, w := range wantRecords {
		r := got.records[i]
		if r.AgentID != w.agent || r.Action != w.action || r.Decision != w.decision || r.Reason != w.reason ||
			r.Status != w.status || !slices.Equal(r.Chain, w.chain) || r.TraceID != got.chain.TraceID {
			t.Errorf("record %d: got %s %s %s %s %d chain %v trace %s, want %s %s %s %s %d chain %v trace %s", i,
				r.AgentID, r.Action, r.Decision, r.Reason, r.Status, r.Chain, r.TraceID,
				w.agent, w.action, w.decision, w.reason, w.status, w.chain, got.chain.TraceID)
		}
	}

	// The revoked agent: refused with 401 before anything was handed on.
	e := got.revoked.Error
	if e == nil || e.Kind != "unauthorized" || e.Status != 401 || e.Reason != "agent_revoked" || len(got.revoked.Steps) != 0 {
		t.Errorf("the revoked orchestrator: got error %+v, steps %+v; want unauthorized 401 agent_revoked and no steps", e, got.revoked.Steps)
	}
	if len(got.refused) != 1 || got.refused[0].Status != 401 || got.refused[0].Reason != "agent_revoked" {
		t.Errorf("the revoked orchestrator's audit records: %+v, want one 401 agent_revoked", got.refused)
	}

	// The tree `meshguard audit trace` printed: one chain, three agents deep.
	for _, want := range []string{
		"trace " + got.chain.TraceID + ": 5 decisions",
		"└─ delegated to researcher (" + res + ")",
		"└─ delegated to emailer (" + em + ")",
		"└─ DENY write:notes/drafts/report (delegation_ceiling",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
}
