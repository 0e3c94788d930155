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
// researcher and the TypeScript emailer as real processes, every hop
// through MeshGuard's gateway routed by the service catalogue — and checks
// the story it tells: the chain allowed hop by hop and recorded as one
// chain, the ceiling denial of a hop, and the revoked agent's 401 at the
// gateway, which never reached the researcher.
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
		{"orchestrator", "hand-on:researcher", "allowed", ""},
		{"researcher", "read:papers", "allowed", ""},
		{"emailer", "write:email", "allowed", ""},
		{"researcher", "write:notes/drafts", "denied", policy.ReasonDelegationCeiling},
	}
	if got.chain.Error != nil || !slices.Equal(steps, wantSteps) {
		t.Errorf("the chain's steps:\n got %+v (error %+v)\nwant %+v", steps, got.chain.Error, wantSteps)
	}

	// What MeshGuard recorded: each hop decided by the gateway as the
	// catalogue route's action, on the service's host; each agent's own
	// action asked through the API; one trace, with the chain.
	wantRecords := []struct {
		agent, action, decision, reason string
		status                          int
		chain                           []string
		source, host                    string
	}{
		{orch, "write:tasks/research", "allow", policy.ReasonRuleAllow, 200, []string{orch}, "gateway", "researcher.mesh.test"},
		{res, "read:papers", "allow", policy.ReasonRuleAllow, 200, []string{orch, res}, "api", ""},
		{res, "write:email", "allow", policy.ReasonRuleAllow, 200, []string{orch, res}, "gateway", "emailer.mesh.test"},
		{em, "write:email", "allow", policy.ReasonRuleAllow, 200, []string{orch, res, em}, "api", ""},
		{res, "write:notes/drafts", "deny", policy.ReasonDelegationCeiling, 403, []string{orch, res}, "gateway", "emailer.mesh.test"},
	}
	if len(got.records) != len(wantRecords) {
		t.Fatalf("trace %s: %d records, want %d", got.chain.TraceID, len(got.records), len(wantRecords))
	}
	for i, w := range wantRecords {
		r := got.records[i]
		if r.AgentID != w.agent || r.Action != w.action || r.Decision != w.decision || r.Reason != w.reason ||
			r.Status != w.status || !slices.Equal(r.Chain, w.chain) || r.TraceID != got.chain.TraceID || r.Source != w.source || r.Host != w.host {
			t.Errorf("record %d: got %s %s %s %s %d chain %v trace %s source %s host %s, want %s %s %s %s %d chain %v trace %s source %s host %s", i,
				r.AgentID, r.Action, r.Decision, r.Reason, r.Status, r.Chain, r.TraceID, r.Source, r.Host,
				w.agent, w.action, w.decision, w.reason, w.status, w.chain, got.chain.TraceID, w.source, w.host)
		}
	}

	// The revoked agent: refused with 401 at the gateway; the researcher
	// received the one task of the chain, not the revoked agent's.
	e := got.revoked.Error
	if e == nil || e.Kind != "unauthorized" || e.Status != 401 || e.Reason != "agent_revoked" || len(got.revoked.Steps) != 0 {
		t.Errorf("the revoked orchestrator: got error %+v, steps %+v; want unauthorized 401 agent_revoked and no steps", e, got.revoked.Steps)
	}
	if len(got.refused) != 1 || got.refused[0].Status != 401 || got.refused[0].Reason != "agent_revoked" || got.refused[0].Source != "gateway" {
		t.Errorf("the revoked orchestrator's audit records: %+v, want one 401 agent_revoked from the gateway", got.refused)
	}
	if got.tasks != 1 {
		t.Errorf("the researcher received %d tasks, want 1 (the revoked agent's must not reach it)", got.tasks)
	}

	// The tree `meshguard audit trace` printed: one chain, three agents deep.
	for _, want := range []string{
		"trace " + got.chain.TraceID + ": 5 decisions",
		"└─ delegated to researcher (" + res + ")",
		"└─ delegated to emailer (" + em + ")",
		"├─ ALLOW write:email → emailer.mesh.test (rule_allow",
		"DENY write:notes/drafts → emailer.mesh.test (delegation_ceiling",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
}
