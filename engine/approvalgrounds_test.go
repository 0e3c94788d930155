package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/policy"
)

// TestAnApprovalGivenYieldsToWhatChangedSince: an approval granted and not
// yet used serves no request once its grounds are gone — the agent
// revoked (401), a deny rule added for the action (deny beats approve) —
// and is not used up by the refused retry: nothing of the approval step
// runs for a request something else refuses.
func TestAnApprovalGivenYieldsToWhatChangedSince(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, af *approvalFixture, first engine.Decision)
		status int
		reason string
	}{
		{"the agent revoked", func(t *testing.T, af *approvalFixture, first engine.Decision) {
			af.f.Revoke(t, first.AgentID)
		}, 401, engine.ReasonAgentRevoked},
		{"a deny rule added", func(t *testing.T, af *approvalFixture, _ engine.Decision) {
			path := filepath.Join(af.f.Dir, "policies.yaml")
			changed := strings.Replace(approvePolicy, `  - {name: no-delete, effect: deny, actions: ["delete:*"]}`,
				`  - {name: no-delete, effect: deny, actions: ["delete:*", "write:email"]}`, 1)
			if changed == approvePolicy {
				t.Fatal("the policy edit did not apply")
			}
			if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := af.f.Policies.Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, 403, policy.ReasonRuleDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			af := newApprovalFixture(t, engine.ModeEnforce)
			r := af.write("/grounds")
			first := check(t, af.f.Engine, r)
			wantApproval(t, first, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
			af.decide(t, first.ApprovalID, true)
			tc.change(t, af, first)
			d := check(t, af.f.Engine, r)
			if d.Allowed || d.Status != tc.status || d.Reason != tc.reason || d.ApprovalID != "" {
				t.Fatalf("after the change: %d %s approval %q; want %d %s and no approval", d.Status, d.Reason, d.ApprovalID, tc.status, tc.reason)
			}
			a, err := af.f.Store.GetApproval(context.Background(), first.ApprovalID)
			if err != nil || a.Status != approval.Approved || a.Uses != 0 {
				t.Fatalf("the approval after the refused retry: %s, %d uses (%v); want approved, unused", a.Status, a.Uses, err)
			}
		})
	}
}
