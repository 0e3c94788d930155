package api

import (
	"encoding/json"
	"time"
)

// Human approval's wire types (docs/api.md#human-approvals,
// docs/governance.md#answering-an-approval).

// HeaderApproval names the approval a 403 waits on (every enforcement point).
const HeaderApproval = "X-MeshGuard-Approval"

// Long polls: GET /v1/approvals/{id}?wait=N, or `Prefer: wait=N` (RFC 7240)
// there and on POST /v1/check, hold the answer up to N seconds.
const (
	HeaderPrefer            = "Prefer"
	HeaderPreferenceApplied = "Preference-Applied"
	MinApprovalWait         = 1  // seconds
	MaxApprovalWait         = 60 // seconds
)

// Error codes of the approval endpoints.
const (
	ErrorApprovalNotPending = "approval_not_pending" // 409: decided already (Status says how)
	ErrorApprovalExpired    = "approval_expired"     // 409: it expired before anyone decided
)

// Approval is one human approval (GET /v1/approvals/{id}, the admin API).
// An agent reading its own approval gets only the fields up to TraceID;
// the admin token gets everything, the arguments as the audit trail keeps
// them included.
type Approval struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"` // pending, approved, denied, expired, used
	Action    string     `json:"action"`
	Resource  string     `json:"resource"`
	AgentID   string     `json:"agentId"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	DecidedAt *time.Time `json:"decidedAt,omitempty"`
	// DecidedBy is the approver's name: the admin token only.
	DecidedBy string `json:"decidedBy,omitempty"`
	// Reason is what the approver wrote with the decision.
	Reason  string `json:"reason,omitempty"`
	TraceID string `json:"traceId"`

	// The admin token only.
	AgentName       string          `json:"agentName,omitempty"`
	Chain           []string        `json:"chain,omitempty"` // agent ids, root → actor
	Method          string          `json:"method,omitempty"`
	Name            string          `json:"name,omitempty"`
	Arguments       json.RawMessage `json:"arguments,omitempty"`
	ArgumentsDigest string          `json:"argumentsDigest,omitempty"`
	// Query, Context and Params are the rest of what the approval is
	// bound to, redacted as the audit trail redacts (docs/governance.md
	// "What the approver is shown"): the proxied request's query string,
	// the decision's context, an A2A request's params (only under
	// AUDIT_ARGUMENTS; their digest always). Omitted names those too large
	// to show.
	Query        string          `json:"query,omitempty"`
	Context      json.RawMessage `json:"context,omitempty"`
	Params       json.RawMessage `json:"params,omitempty"`
	ParamsDigest string          `json:"paramsDigest,omitempty"`
	Omitted      []string        `json:"omitted,omitempty"`
	Policy       string          `json:"policy,omitempty"`
	Rule         string          `json:"rule,omitempty"`
	Approvers    []string        `json:"approvers,omitempty"`
	TTL          string          `json:"ttl,omitempty"` // a Go duration; "" = use once
	DecisionID   string          `json:"decisionId,omitempty"`
	Uses         *int            `json:"uses,omitempty"`
}

// ApprovalList is GET /admin/approvals: newest first; Next, when set, is
// the `before` of the next page.
type ApprovalList struct {
	Approvals []Approval `json:"approvals"`
	Next      string     `json:"next,omitempty"`
}

// ApprovalDecision is the body of POST /admin/approvals/{id}/approve and
// …/deny: who decides (required), and why (optional).
type ApprovalDecision struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// ApprovalConflict is the 409 of deciding an approval that is not
// pending: Error is approval_not_pending (Status says what it is) or
// approval_expired.
type ApprovalConflict struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Status  string `json:"status"`
}
