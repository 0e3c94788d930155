package filterdecider_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
	"github.com/meshguard/meshguard/policy"
)

// lockdown would deny the orchestrator every read and limit it to one
// request a minute, were it enforcing.
const lockdown = `
name: zz-lockdown
mode: shadow
appliesTo: {tags: [orchestrator]}
rateLimits: {requestsPerMinute: 1}
rules:
  - {name: no-reads, effect: deny, actions: ["read:*"]}
`

// TestShadowPolicyInTheFilter: the filter's configuration carries a shadow
// policy as a shadow policy, so the filter decides as MeshGuard does —
// locally, without the shadow policy's denial or its rate limit (which
// would make it defer) — and its record carries the same shadow answer.
func TestShadowPolicyInTheFilter(t *testing.T) {
	env := filtertest.New(t)
	file := filepath.Join(env.F.Dir, "policies.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, append(data, "\n---\n"+lockdown...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := env.F.Policies.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p, ok := env.F.Policies.Current().Policy("zz-lockdown"); !ok || !p.Shadow() {
		t.Fatal("the shadow policy did not load")
	}
	cfg, err := filterconfig.Parse(env.Generate(t))
	if err != nil {
		t.Fatal(err)
	}
	local, err := filterdecider.New(cfg, filterdecider.Options{Now: func() time.Time { return filtertest.Now }, Recorder: env.F.Audit})
	if err != nil {
		t.Fatal(err)
	}
	want := policy.ShadowDecision{Effect: policy.Deny, Reason: policy.ReasonRuleDeny, Policy: "zz-lockdown", Rule: "no-reads"}
	for i := range 3 {
		r := engine.Request{Method: "GET", Host: "docs.mesh", Path: "/docs/readme", Token: env.OrchT}
		d, err := local.Check(context.Background(), &r)
		if err != nil {
			t.Fatalf("request %d: %v; the filter must decide it itself", i, err)
		}
		if d.Status != 200 || d.Reason != policy.ReasonRuleAllow || d.Shadow == nil || *d.Shadow != want {
			t.Fatalf("request %d: %d %s shadow %+v; want 200 rule_allow with shadow %+v", i, d.Status, d.Reason, d.Shadow, want)
		}
		var last audit.Record
		if err := env.F.Store.ScanAudit(context.Background(), func(r audit.Record) error { last = r; return nil }); err != nil {
			t.Fatal(err)
		}
		if last.DecisionID != d.ID || last.Shadow == nil || last.Shadow.Policy != "zz-lockdown" || last.Shadow.Decision != "deny" {
			t.Fatalf("the filter's record %s carries shadow %+v", last.DecisionID, last.Shadow)
		}
	}
}
