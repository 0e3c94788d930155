package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/approvallink"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
)

// approvalNotifier announces each human approval raised (engine's
// ApprovalNotifier): a log line (who asked for what, and the approval's
// id; never the arguments or anything of a token), and the approval alert
// through every provider (docs/alerting.md "Approval requests").
type approvalNotifier struct {
	log    *slog.Logger
	alerts *alert.Dispatcher // nil: no provider configured
	origin alert.Origin
	names  func(ctx context.Context, ids []string) []string
}

func (n *approvalNotifier) ApprovalRaised(ctx context.Context, a approval.Approval) {
	n.log.InfoContext(ctx, "approval requested", "approval", a.ID, "agent", a.AgentID, "action", a.Action,
		"policy", a.Policy, "rule", a.Rule, "expires", a.ExpiresAt, "trace_id", a.TraceID)
	if n.alerts == nil {
		n.log.WarnContext(ctx, "approval requested, and no alert provider is configured to tell anyone: see `meshguard approvals list`",
			"approval", a.ID)
		return
	}
	// Stored before the check answers (the request waits for one insert):
	// a raised approval is announced once, so it must not be lost with
	// this process. The request's cancellation does not stop it.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := n.alerts.Announce(sctx, alert.ForApproval(&a, n.names(sctx, a.Chain), time.Now(), n.origin)); err != nil {
		n.log.ErrorContext(ctx, "approval requested but its notification could not be stored; see `meshguard approvals list`",
			"approval", a.ID, "error", err)
	}
}

// agentNames returns a chain's agent names (an id where the agent is
// unknown): what a person reads in a notification.
func agentNames(agents interface {
	GetAgent(ctx context.Context, id string) (identity.Agent, error)
}) func(ctx context.Context, ids []string) []string {
	return func(ctx context.Context, ids []string) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = id
			if a, err := agents.GetAgent(ctx, id); err == nil && a.Name != "" {
				out[i] = a.Name
			}
		}
		return out
	}
}

// warnUnannounced logs at start when a loaded policy asks for approvals
// and no provider would announce them.
func warnUnannounced(set *policy.Set, alerts *alert.Dispatcher, log *slog.Logger) {
	if alerts != nil || set == nil {
		return
	}
	for _, p := range set.Policies() {
		for _, r := range p.Rules {
			if r.Effect == policy.Approve {
				log.Warn("a policy asks for human approval but no alert provider is configured to announce approvals "+
					"(ALERT_WEBHOOK_URL, ALERT_SLACK_WEBHOOK or ALERT_SMTP_HOST): approvers see them only with `meshguard approvals list`",
					"policy", p.Name, "rule", r.Name)
				return
			}
		}
	}
}

// approvalLinkSecret names the link key in the store's secrets.
const approvalLinkSecret = "approval-link"

// linkSigner returns the signer of approval links, or nil without
// APPROVAL_LINK_BASE. The key is generated once in the store and shared by
// every replica.
func linkSigner(ctx context.Context, cfg *config.Config, secrets interface {
	Secret(ctx context.Context, name string, size int) ([]byte, error)
}) (*approvallink.Signer, error) {
	if cfg.Alerts.ApprovalLinkBase == "" {
		return nil, nil
	}
	key, err := secrets.Secret(ctx, approvalLinkSecret, approvallink.KeySize)
	if err != nil {
		return nil, fmt.Errorf("approval links: %w", err)
	}
	return approvallink.NewSigner(cfg.Alerts.ApprovalLinkBase, key)
}

// signedLinks is the dispatcher's LinkFunc for s.
func signedLinks(s *approvallink.Signer) alert.LinkFunc {
	return func(id, channel string, exp time.Time) (alert.Links, bool) {
		return alert.Links{Approve: s.Link(id, approvallink.Approve, channel, exp), Deny: s.Link(id, approvallink.Deny, channel, exp)}, true
	}
}

// linkDecider is the approval API's one "decide and record" function, for
// the signed links: a link's decision is in the audit trail as the admin
// API's is.
type linkDecider struct{ svc *approvalapi.Service }

func (l linkDecider) Decide(ctx context.Context, d approval.Decision, source string) (approval.Approval, error) {
	return l.svc.Decide(ctx, d, approvalapi.Source(source))
}
