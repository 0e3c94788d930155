package server

import (
	"context"
	"log/slog"

	"github.com/meshguard/meshguard/approval"
)

// approvalLog tells the log of each human approval raised, until the
// notifications send it to the approvers: who asked for what, and the
// approval's id. Never the arguments or anything of a token.
type approvalLog struct{ log *slog.Logger }

func (l approvalLog) ApprovalRaised(ctx context.Context, a approval.Approval) {
	l.log.InfoContext(ctx, "approval requested", "approval", a.ID, "agent", a.AgentID, "action", a.Action,
		"policy", a.Policy, "rule", a.Rule, "expires", a.ExpiresAt, "trace_id", a.TraceID)
}
