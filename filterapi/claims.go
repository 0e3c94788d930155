package filterapi

import (
	"strconv"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
)

// checkFilterShadow holds a shipped record's shadow answer to what the
// engine writes (engine.recordShadow): an effect, and a reason, policy and
// rule under the bounds of the record's own — never free text for
// `policy shadow` to group by.
func checkFilterShadow(sh *audit.Shadow) error {
	if sh == nil {
		return nil
	}
	switch sh.Decision {
	case "allow", "deny", "approve":
	default:
		return &fieldError{field: "shadow.decision", reason: strconv.Quote(sh.Decision) + ": expected allow, deny or approve"}
	}
	if sh.Policy == "" {
		return &fieldError{field: "shadow.policy", reason: "names no shadow policy"}
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"shadow.reason", sh.Reason, 64}, {"shadow.policy", sh.Policy, 256}, {"shadow.rule", sh.Rule, 256}} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return err
		}
	}
	return nil
}

// checkFilterApproval holds a shipped record to what the filter's engine
// writes of human approval: the filter raises and uses none (it defers
// them to MeshGuard), so the only approval step it records is a denial
// as approval_required with nothing raised (a header-only call, audit
// mode), whose approval names none. An approval id or any other approval
// reason would seal into the chain a use of an approval that never
// happened, and make `policy replay` count the record as approve.
func checkFilterApproval(rec *audit.Record) error {
	required := rec.Reason == engine.ReasonApprovalRequired
	switch {
	case approval.IsReason(rec.Reason) && !required:
		return &fieldError{field: "reason", reason: strconv.Quote(rec.Reason) + ": the filter raises and uses no approval (MeshGuard decides those)"}
	case required != (rec.Approval != nil):
		return &fieldError{field: "approval", reason: "present exactly when the reason is " + engine.ReasonApprovalRequired}
	case required && (rec.Decision != "deny" || rec.Approval.ID != "" || rec.Approval.Outcome != ""):
		return &fieldError{field: "approval", reason: "the filter raises and uses no approval: expected a denial naming none"}
	}
	return nil
}
