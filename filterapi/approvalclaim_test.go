package filterapi_test

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
)

// TestFilterAuditRefusesApprovalClaims: the wasm filter never raises or
// uses a human approval (it defers those decisions to MeshGuard), so a
// shipped record naming an approval, or giving a reason only the approval
// step gives, is one the filter could not have written: refused with a
// 400 naming the field. Before, such a record was sealed into the chain,
// so a filter credential could write "approval apr_… was granted to this
// request" into the trail, and an allow shipped as approval_granted made
// `policy replay` count it as approve — a candidate that now asks for
// approval replayed as unchanged. What the engine does write locally — a
// header-only call's, or audit mode's, approval_required with an empty
// approval — still passes.
func TestFilterAuditRefusesApprovalClaims(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	const id = "apr_01a24bdd72b1a9199a128f5f697bc0a56924f55d"
	allow := audit.Record{Timestamp: filtertest.Now, DecisionID: "dec_x", AgentID: env.Orch.ID, AgentName: env.Orch.Name, Action: "read:docs",
		Method: "GET", Path: "/docs", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "rule_allow", Source: "wasm", Mode: "enforce"}
	deny := allow
	deny.Decision, deny.Status, deny.Reason = "deny", 403, "approval_required"
	deny.Approval = &audit.Approval{}
	for _, tt := range []struct {
		name string
		edit func(r *audit.Record)
		want string // "" : accepted
	}{
		{"an allow claiming an approval used", func(r *audit.Record) {
			*r = allow
			r.Reason, r.Approval = "approval_granted", &audit.Approval{ID: id, Outcome: "granted"}
		}, "records[0]: reason"},
		{"an allow giving approval_granted alone", func(r *audit.Record) { *r = allow; r.Reason = "approval_granted" }, "records[0]: reason"},
		{"an allow carrying an empty approval", func(r *audit.Record) { *r = allow; r.Approval = &audit.Approval{} }, "records[0]: approval"},
		{"a denial naming an approval", func(r *audit.Record) { *r = deny; r.Approval = &audit.Approval{ID: id, Outcome: "requested"} }, "records[0]: approval"},
		{"a denial as approval_denied", func(r *audit.Record) {
			*r = deny
			r.Reason, r.Approval = "approval_denied", &audit.Approval{ID: id, Outcome: "denied"}
		}, "records[0]: reason"},
		{"approval_required without its approval object", func(r *audit.Record) { *r = deny; r.Approval = nil }, "records[0]: approval"},
		{"an empty approval on another reason", func(r *audit.Record) { *r = deny; r.Reason = "rule_deny" }, "records[0]: approval"},
		{"what the engine writes locally: approval_required, nothing raised", func(r *audit.Record) { *r = deny }, ""},
		{"the same in audit mode", func(r *audit.Record) { *r = deny; r.Mode = "audit" }, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r audit.Record
			tt.edit(&r)
			code, msg := postAudit(t, api, filterprotocol.AuditBatch{Records: []audit.Record{r}})
			switch {
			case tt.want == "" && code != 204:
				t.Fatalf("%d %q; want 204", code, msg)
			case tt.want != "" && (code != 400 || !strings.Contains(msg, tt.want)):
				t.Fatalf("%d %q; want 400 mentioning %q", code, msg, tt.want)
			}
		})
	}
}
