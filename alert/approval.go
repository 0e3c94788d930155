package alert

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/meshguard/meshguard/approval"
)

// TriggerApproval is a human approval raised by an `effect: approve` rule
// (docs/governance.md). It is not one of ALERT_ON's: every approval is
// announced to every configured provider, one by one, outside the rate
// limit (Dispatcher.Announce).
const TriggerApproval Trigger = "approval"

// EventApproval is the webhook event of an approval request.
const EventApproval = "meshguard.approval"

// Channels a signed link names: which notification it came from.
const (
	ChannelWebhook = "webhook"
	ChannelSlack   = "slack"
	ChannelEmail   = "email"
)

// ApprovalRequest is what an approval alert says of the request a person
// is asked to approve (docs/alerting.md "Approval requests").
type ApprovalRequest struct {
	ID        string `json:"id"`
	AgentID   string `json:"agentId"`
	AgentName string `json:"agentName"`
	// Chain is the delegation chain by agent name (an id where the name
	// is unknown), root → actor.
	Chain     []string `json:"chain"`
	Action    string   `json:"action"`
	Resource  string   `json:"resource"`
	Policy    string   `json:"policy"`
	Rule      string   `json:"rule"`
	Approvers []string `json:"approvers"`
	// Method and Name are the agent-protocol call's (tools/call and the
	// tool); Arguments are the call's arguments as the audit trail records
	// them (redacted per AUDIT_REDACT; absent without AUDIT_ARGUMENTS).
	Method          string          `json:"method,omitempty"`
	Name            string          `json:"name,omitempty"`
	Arguments       json.RawMessage `json:"arguments,omitempty"`
	ArgumentsDigest string          `json:"argumentsDigest,omitempty"`
	// Query, Context and Params are the rest of what the approval is
	// bound to, redacted as the trail redacts (docs/governance.md "What
	// the approver is shown"): the proxied request's query string, the
	// decision's context, an A2A request's params (absent without
	// AUDIT_ARGUMENTS; their digest always). Omitted names those too large
	// to show.
	Query        string          `json:"query,omitempty"`
	Context      json.RawMessage `json:"context,omitempty"`
	Params       json.RawMessage `json:"params,omitempty"`
	ParamsDigest string          `json:"paramsDigest,omitempty"`
	Omitted      []string        `json:"omitted,omitempty"`
	TraceID      string          `json:"traceId"`
	ExpiresAt    time.Time       `json:"expiresAt"`
	// Command decides it from the CLI; Links from the notification, when
	// APPROVAL_LINK_BASE is set. Links are signed for one provider and
	// filled in as it sends (never stored in the outbox).
	Command string `json:"command"`
	Links   *Links `json:"links,omitempty"`
}

// Links are an approval's signed one-time links.
type Links struct {
	Approve string `json:"approve"`
	Deny    string `json:"deny"`
}

// LinkFunc signs the links of approval id for one channel, valid until
// exp; ok is false when there are none (no APPROVAL_LINK_BASE).
type LinkFunc func(id, channel string, exp time.Time) (l Links, ok bool)

// ForApproval returns the alert announcing approval a; chain is its chain
// by name, root → actor.
func ForApproval(a *approval.Approval, chain []string, at time.Time, o Origin) Alert {
	al := newAlert(TriggerApproval, at, o)
	al.Event, al.Severity = EventApproval, SeverityWarning
	who := orUnknown(a.AgentName)
	if a.AgentName == "" {
		who = orUnknown(a.AgentID)
	}
	al.Title = "Approval requested: " + who + " → " + a.Action
	al.Message = fmt.Sprintf("%s asks to %s on %s; rule %q of policy %q needs a person's approval before %s.",
		who, a.Action, orUnknown(a.Resource), a.Rule, a.Policy, a.ExpiresAt.UTC().Format(time.RFC3339))
	al.Entry = Entry{TraceID: a.TraceID, AgentID: a.AgentID, AgentName: a.AgentName, Action: a.Action,
		Decision: "approve", PolicyName: a.Policy, Reason: "approval_required"}
	approvers := a.Approvers
	if approvers == nil {
		approvers = []string{}
	}
	al.Approval = &ApprovalRequest{
		ID: a.ID, AgentID: a.AgentID, AgentName: a.AgentName, Chain: chain, Action: a.Action, Resource: a.Resource,
		Policy: a.Policy, Rule: a.Rule, Approvers: approvers, Method: a.Method, Name: a.Name,
		Arguments: a.Arguments, ArgumentsDigest: a.ArgumentsDigest, Query: a.Query, Context: a.Context,
		Params: a.Params, ParamsDigest: a.ParamsDigest, Omitted: a.Omitted, TraceID: a.TraceID, ExpiresAt: a.ExpiresAt.UTC(),
		Command: "meshguard approvals approve " + a.ID,
	}
	return al
}

// approvalLines are an approval request's fields as label and value, in
// reading order (Slack's fields, email's table).
func approvalLines(r *ApprovalRequest) [][2]string {
	var lines [][2]string
	agent := r.AgentName
	if agent == "" {
		agent = r.AgentID
	}
	call := strings.TrimSpace(r.Method + " " + r.Name)
	approvers := strings.Join(r.Approvers, ", ")
	shown := approval.Shown{Query: r.Query, Context: r.Context, Arguments: r.Arguments, ArgumentsDigest: r.ArgumentsDigest,
		Params: r.Params, ParamsDigest: r.ParamsDigest, Omitted: r.Omitted}
	fields := [][2]string{{"Agent", agent}, {"Chain", strings.Join(r.Chain, " → ")}, {"Action", r.Action}, {"Resource", r.Resource}, {"Call", call}}
	fields = append(fields, shown.Lines()...)
	fields = append(fields, [][2]string{{"Policy", r.Policy + " / " + r.Rule}, {"Approvers", approvers},
		{"Expires", r.ExpiresAt.Format("2006-01-02 15:04:05 MST")}, {"Trace ID", r.TraceID}, {"Approval ID", r.ID}}...)
	for _, f := range fields {
		if f[1] != "" {
			lines = append(lines, f)
		}
	}
	return lines
}
