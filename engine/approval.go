package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/policy"
)

// Approvals keeps human approvals (the store): RequestApproval raises,
// finds or uses the approval of one request (store.RequestApproval).
type Approvals interface {
	RequestApproval(ctx context.Context, a approval.Approval, now time.Time) (approval.Approval, approval.Outcome, error)
}

// ApprovalNotifier is told of every approval raised, after its decision is
// recorded, to send it to the approvers (the alert providers). It must not
// block: it runs on the Check path of the request that raised it.
type ApprovalNotifier interface {
	ApprovalRaised(ctx context.Context, a approval.Approval)
}

// Reason codes of human approval (docs/governance.md).
const (
	// ReasonApprovalRequired: the policy says approve and no approval of
	// this very request is approved yet (403, with the approval's id).
	ReasonApprovalRequired = policy.ReasonApprovalRequired
	// ReasonApprovalGranted: an approval of this very request was used.
	ReasonApprovalGranted = "approval_granted"
	// ReasonApprovalDenied: a person denied this request (403).
	ReasonApprovalDenied = "approval_denied"
	// ReasonApprovalExpired: its approval expired, undecided or past its
	// ttl (403); the next retry raises a new one.
	ReasonApprovalExpired = "approval_expired"
	// ReasonApprovalLimit: the agent has approval.MaxPendingPerAgent
	// approvals pending; nothing more is raised for it (429).
	ReasonApprovalLimit = "approval_limit"
)

// ApprovalPath is where an approval is followed, on the admin API.
func ApprovalPath(id string) string { return "/v1/approvals/" + id }

// approve settles a request whose policy says approve, once every other
// check passed: the binding's approved approval used (allow), or a denial
// naming the approval. In audit mode nothing is raised or used: the
// request is recorded as approval_required, and allowed as every denial is.
func (e *Engine) approve(ctx context.Context, r *Request, pd *policy.Decision, d *Decision, now time.Time) error {
	if e.cfg.Mode == ModeAudit {
		return d.deny(403, ReasonApprovalRequired, "%s (audit mode: no approval is raised)", pd.Message)
	}
	if d.Call != nil && d.Call.HeaderOnly {
		// An approval binds the arguments, and these are unknown: one
		// given here would serve any arguments.
		return d.deny(403, ReasonApprovalRequired, "%s; a call decided from its headers alone cannot be approved (its arguments are unknown): send it with its body", pd.Message)
	}
	if e.cfg.Approvals == nil {
		return internal("asking for an approval", errors.New("no approval store is configured"))
	}
	a, err := e.candidate(r, pd, d, now)
	if err != nil {
		return internal("binding the approval", err)
	}
	got, outcome, err := e.cfg.Approvals.RequestApproval(ctx, a, now)
	if errors.Is(err, approval.ErrTooMany) {
		d.RetryAfter = time.Minute
		return d.deny(429, ReasonApprovalLimit, "agent %q has %d approvals pending; none is raised until some are decided", d.AgentName, approval.MaxPendingPerAgent)
	}
	if err != nil {
		return internal("asking for an approval", err)
	}
	d.ApprovalID, d.ApprovalOutcome = got.ID, outcome
	switch outcome {
	case approval.OutcomeGranted:
		d.Reason, d.Message = ReasonApprovalGranted, fmt.Sprintf("approved by %s (approval %s)", got.DecidedBy, got.ID)
		return nil
	case approval.OutcomeRequested, approval.OutcomePending:
		// One message for both: a retry answers as the first request did.
		if outcome == approval.OutcomeRequested {
			d.raised = &got
		}
		return d.deny(403, ReasonApprovalRequired, "%s: waiting for approval %s", pd.Message, got.ID)
	case approval.OutcomeDenied:
		return d.deny(403, ReasonApprovalDenied, "approval %s was denied; this request may ask again after %s", got.ID, got.ExpiresAt.Format(time.RFC3339))
	case approval.OutcomeExpired:
		return d.deny(403, ReasonApprovalExpired, "approval %s expired; a retry asks again", got.ID)
	}
	return internal("asking for an approval", fmt.Errorf("unknown outcome %q", outcome))
}

// candidate is the approval this request would raise: bound to exactly
// it, with what a person needs to decide, its arguments as the audit
// trail records them.
func (e *Engine) candidate(r *Request, pd *policy.Decision, d *Decision, now time.Time) (approval.Approval, error) {
	b := approval.Binding{AgentID: d.AgentID, Chain: d.Chain, Action: d.Action, Resource: d.Resource, Context: d.Context}
	if !r.cooperative() {
		// The resource is the path; the upstream also acts on the query,
		// all of it, whatever the policies read of it.
		b.Query = rawQuery(r.Path)
	}
	a := approval.Approval{
		ID: approval.NewID(now), AgentID: d.AgentID, AgentName: d.AgentName, Chain: d.Chain,
		Action: d.Action, Resource: d.Resource, Policy: pd.Policy, Rule: pd.Rule,
		TraceID: d.TraceID, DecisionID: d.ID, CreatedAt: now, ExpiresAt: now.Add(e.cfg.ApprovalPendingTTL),
	}
	if r := pd.ApproveRule; r != nil {
		a.Approvers, a.TTL = r.Approvers, r.TTL
	}
	ac := e.cfg.ApprovalArguments
	var err error
	if c := d.Call; c != nil {
		a.Method, a.Name = c.Method, c.Name
		if c.HasArguments {
			digest, args, err := ac.Recorded(c.RawArguments)
			if err != nil {
				return approval.Approval{}, err
			}
			b.ArgumentsDigest, a.ArgumentsDigest, a.Arguments = digest, digest, args
			if ac.Record && args == nil {
				a.Omitted = append(a.Omitted, "arguments")
			}
		}
		if c.RawParams != nil {
			// An A2A request: the message is what a person approves, as a
			// tool call's arguments are; another message, task or
			// configuration is another request. It is shown as arguments
			// are recorded (AUDIT_ARGUMENTS, AUDIT_REDACT): one rule.
			digest, params, err := ac.Recorded(c.RawParams)
			if err != nil {
				return approval.Approval{}, err
			}
			b.ParamsDigest, a.ParamsDigest, a.Params = digest, digest, params
			if ac.Record && params == nil {
				a.Omitted = append(a.Omitted, "params")
			}
		}
	}
	if err := shown(&a, ac, b); err != nil {
		return approval.Approval{}, err
	}
	if a.Binding, err = b.Digest(); err != nil {
		return approval.Approval{}, err
	}
	return a, nil
}

// shown fills what a person deciding a is shown of the query and the
// context it is bound to, redacted as the trail redacts (AUDIT_REDACT):
// without them an approver would approve POST /outbox blind to ?to=.
func shown(a *approval.Approval, ac audit.ArgumentsConfig, b approval.Binding) error {
	q, ok := ac.ShownQuery(b.Query)
	if !ok {
		a.Omitted = append(a.Omitted, "query")
	}
	ctx, ok, err := ac.ShownContext(b.Context)
	if err != nil {
		return err
	}
	if !ok {
		a.Omitted = append(a.Omitted, "context")
	}
	a.Query, a.Context = q, ctx
	return nil
}

// recordApproval is the audit record's approval object of d.
func recordApproval(d *Decision) *audit.Approval {
	if d.ApprovalID == "" && d.Reason != ReasonApprovalRequired {
		return nil
	}
	return &audit.Approval{ID: d.ApprovalID, Outcome: string(d.ApprovalOutcome)}
}
