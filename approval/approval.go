// Package approval is human approval of one request (docs/governance.md):
// the approval record, its states, and the binding that ties a person's
// approval to exactly the request they were shown. The engine asks for
// approvals and uses them; the store keeps them; the admin API, the CLI and
// the notifications read and decide them. It imports nothing of the module.
package approval

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ReasonPrefix starts every reason code a decision gets from the approval
// step (approval_required, approval_granted, approval_denied, …): such a
// decision's policy said approve, whatever the person then answered.
const ReasonPrefix = "approval_"

// IsReason reports whether reason is one of the approval step's.
func IsReason(reason string) bool { return strings.HasPrefix(reason, ReasonPrefix) }

// Status is where an approval is in its life (docs/governance.md "States").
type Status string

// The states. Pending is the only one a person decides; approved is the
// only one a request can use. Denied, expired and used are final.
const (
	// Pending: raised, waiting for a person, until ExpiresAt.
	Pending Status = "pending"
	// Approved: a person approved it; the bound request may use it until
	// ExpiresAt — once (TTL zero: then it becomes used) or any number of
	// times (TTL set).
	Approved Status = "approved"
	// Denied: a person denied it. Retries of the bound request answer
	// approval_denied until ExpiresAt, the deadline the request had while
	// pending; after that a retry raises a new approval.
	Denied Status = "denied"
	// Expired: nobody decided it before ExpiresAt, or its TTL ran out. The
	// retry that finds it so answers approval_expired; the next raises a
	// new approval.
	Expired Status = "expired"
	// Used: a use-once approval some request used.
	Used Status = "used"
)

// Valid reports whether s is one of the states.
func (s Status) Valid() bool {
	switch s {
	case Pending, Approved, Denied, Expired, Used:
		return true
	}
	return false
}

// Outcome is what asking for an approval came to for one request; the
// audit record's approval.outcome.
type Outcome string

// The outcomes of Store.Request.
const (
	OutcomeRequested Outcome = "requested" // a new approval was raised
	OutcomePending   Outcome = "pending"   // the same request is waiting already
	OutcomeGranted   Outcome = "granted"   // an approval was used: allow
	OutcomeDenied    Outcome = "denied"    // a person denied this request
	OutcomeExpired   Outcome = "expired"   // its approval expired
)

// Errors callers branch on.
var (
	// ErrNotFound: no approval with that id.
	ErrNotFound = errors.New("approval not found")
	// ErrNotPending: only a pending approval can be approved or denied.
	ErrNotPending = errors.New("approval is not pending")
	// ErrExpired: the approval expired before it was decided.
	ErrExpired = errors.New("approval expired")
	// ErrInvalid: the approval, decision or filter is malformed.
	ErrInvalid = errors.New("invalid approval")
	// ErrTooMany: the agent has MaxPendingPerAgent approvals pending
	// already; nothing more is raised for it until some are decided or
	// expire (a looping agent must not flood the approvers).
	ErrTooMany = errors.New("too many pending approvals")
)

// Bounds (every limit bounded; docs/storage.md).
const (
	MaxText      = 8192 // action, resource and the other request fields
	MaxDecidedBy = 256  // who decided
	MaxReason    = 1024 // why
	MaxArguments = 8192 // the recorded arguments (audit.MaxRecordedArguments)
	MaxChain     = 6    // agent ids, root → actor (policy caps 5 delegators)
	MaxApprovers = 32   // as the policy language bounds them
	MaxList      = 1000 // one page of List
	DefaultList  = 100  // a page when the filter says none
	// MaxPendingPerAgent bounds the approvals pending for one agent.
	MaxPendingPerAgent = 100
	idRandom           = 14 // random bytes of an id (112 bits), after 6 of time
	idPrefix           = "apr_"
)

// DefaultPendingTTL is how long a raised approval waits for a person
// (APPROVAL_PENDING_TTL).
const DefaultPendingTTL = 24 * time.Hour

// Binding is exactly what an approval approves: the acting agent, the
// chain that delegated to it, the action, the resource, the call's
// arguments (by audit.ArgumentsDigest) and the request context the
// policies read. A request uses an approval only if every field is equal.
type Binding struct {
	AgentID         string
	Chain           []string // agent ids, root → actor
	Action          string
	Resource        string
	ArgumentsDigest string // "" when the request carries no call arguments
	// ParamsDigest is an A2A request's params' (audit.ArgumentsDigest of
	// them: the message, its task, its configuration); "" otherwise.
	ParamsDigest string
	// Query is a proxied request's query string as sent, whether a policy
	// reads it or not: the upstream acts on all of it. "" at POST
	// /v1/check and when the request has none.
	Query string
	// Context is the decision's context (the values policies read, or
	// POST /v1/check's context with its arguments): a rule that asks for
	// approval of mail to outsiders must not have its approval used for
	// another recipient.
	Context map[string]any
}

// Digest is the binding's SHA-256, lower-case hex, over a canonical
// encoding: a JSON array of a version tag and the fields in order (JSON
// strings cannot run into each other, and encoding/json writes a map's
// keys sorted).
func (b Binding) Digest() (string, error) {
	chain := b.Chain
	if chain == nil {
		chain = []string{}
	}
	ctx := b.Context
	if ctx == nil {
		ctx = map[string]any{}
	}
	enc, err := json.Marshal([]any{"meshguard-approval-v1", b.AgentID, chain, b.Action, b.Resource, b.ArgumentsDigest, ctx, b.ParamsDigest, b.Query})
	if err != nil {
		return "", fmt.Errorf("%w: encoding the binding: %w", ErrInvalid, err)
	}
	sum := sha256.Sum256(enc)
	return hex.EncodeToString(sum[:]), nil
}

// Approval is one request for a person's approval, and its answer.
type Approval struct {
	ID      string `json:"id"`
	Status  Status `json:"status"`
	Binding string `json:"binding"` // Binding.Digest of the request

	// What the request was, as a person reads it.
	AgentID   string   `json:"agentId"`
	AgentName string   `json:"agentName,omitempty"`
	Chain     []string `json:"chain"` // agent ids, root → actor
	Action    string   `json:"action"`
	Resource  string   `json:"resource"`
	// Method and Name are the agent-protocol call's (tools/call, the tool).
	Method string `json:"method,omitempty"`
	Name   string `json:"name,omitempty"`
	// Arguments are the call's arguments as the audit trail records them
	// (redacted per AUDIT_REDACT, and only with AUDIT_ARGUMENTS); the
	// digest always.
	Arguments       json.RawMessage `json:"arguments,omitempty"`
	ArgumentsDigest string          `json:"argumentsDigest,omitempty"`
	// The rest of what the approval is bound to, as a person is shown it
	// (docs/governance.md "What the approver is shown"), by the audit
	// trail's redaction rule: Query is a proxied request's query string
	// with redacted parameters' values [redacted]; Context is the
	// decision's context (a JSON object), redacted names [redacted];
	// Params are an A2A request's params (the message) as arguments are
	// recorded (only with AUDIT_ARGUMENTS), their digest always. Omitted
	// names what was too large to show (query, context, arguments, params).
	Query        string          `json:"query,omitempty"`
	Context      json.RawMessage `json:"context,omitempty"`
	Params       json.RawMessage `json:"params,omitempty"`
	ParamsDigest string          `json:"paramsDigest,omitempty"`
	Omitted      []string        `json:"omitted,omitempty"`

	// Why it was asked: the approve rule, and who may approve.
	Policy    string        `json:"policy"`
	Rule      string        `json:"rule"`
	Approvers []string      `json:"approvers,omitempty"`
	TTL       time.Duration `json:"ttl"` // 0: use once

	TraceID    string    `json:"traceId"`
	DecisionID string    `json:"decisionId"` // the decision that raised it
	CreatedAt  time.Time `json:"createdAt"`
	ExpiresAt  time.Time `json:"expiresAt"`

	DecidedBy      string    `json:"decidedBy,omitempty"`
	DecidedAt      time.Time `json:"decidedAt,omitzero"`
	DecisionReason string    `json:"decisionReason,omitempty"`
	Uses           int       `json:"uses"`
}

// Omittable reports whether name is a field Approval.Omitted may name:
// one too large to show.
func Omittable(name string) bool {
	switch name {
	case "query", "context", "arguments", "params":
		return true
	}
	return false
}

// NewID returns a fresh approval id: "apr_", then hex of six bytes of the
// time (so ids sort by creation) and 14 random ones (unguessable).
func NewID(now time.Time) string {
	var b [6 + idRandom]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(b[6:])
	return idPrefix + hex.EncodeToString(b[:])
}

// ValidID reports whether id has the form NewID gives.
func ValidID(id string) bool {
	if len(id) != len(idPrefix)+2*(6+idRandom) || id[:len(idPrefix)] != idPrefix {
		return false
	}
	for _, c := range []byte(id[len(idPrefix):]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Validate checks a new approval before it is stored: every field the
// engine fills, within its bound.
func (a *Approval) Validate() error {
	switch {
	case !ValidID(a.ID):
		return fmt.Errorf("%w: id %q is not an approval id", ErrInvalid, cut(a.ID))
	case len(a.Binding) != 64:
		return fmt.Errorf("%w: binding is not a SHA-256 in hex", ErrInvalid)
	case a.AgentID == "", a.Action == "":
		return fmt.Errorf("%w: agent id and action are required", ErrInvalid)
	case len(a.Chain) == 0 || len(a.Chain) > MaxChain:
		return fmt.Errorf("%w: chain has %d agents (expected 1 to %d, ending with the actor)", ErrInvalid, len(a.Chain), MaxChain)
	case len(a.Approvers) > MaxApprovers:
		return fmt.Errorf("%w: %d approvers, more than %d", ErrInvalid, len(a.Approvers), MaxApprovers)
	case len(a.Arguments) > MaxArguments:
		return fmt.Errorf("%w: arguments of %d bytes, more than %d", ErrInvalid, len(a.Arguments), MaxArguments)
	case len(a.Params) > MaxArguments:
		return fmt.Errorf("%w: params of %d bytes, more than %d", ErrInvalid, len(a.Params), MaxArguments)
	case len(a.Context) > MaxArguments:
		return fmt.Errorf("%w: context of %d bytes, more than %d", ErrInvalid, len(a.Context), MaxArguments)
	case len(a.Query) > MaxArguments:
		return fmt.Errorf("%w: query of %d bytes, more than %d", ErrInvalid, len(a.Query), MaxArguments)
	case len(a.Context) > 0 && (a.Context[0] != '{' || !json.Valid(a.Context)):
		return fmt.Errorf("%w: context is not a JSON object", ErrInvalid)
	case a.TTL < 0:
		return fmt.Errorf("%w: negative ttl", ErrInvalid)
	case a.CreatedAt.IsZero() || !a.ExpiresAt.After(a.CreatedAt):
		return fmt.Errorf("%w: expires at %s, not after its creation", ErrInvalid, a.ExpiresAt)
	}
	for _, f := range []struct{ name, v string }{
		{"agent id", a.AgentID}, {"agent name", a.AgentName}, {"action", a.Action}, {"resource", a.Resource},
		{"method", a.Method}, {"name", a.Name}, {"arguments digest", a.ArgumentsDigest}, {"policy", a.Policy},
		{"rule", a.Rule}, {"trace id", a.TraceID}, {"decision id", a.DecisionID}, {"params digest", a.ParamsDigest},
	} {
		if len(f.v) > MaxText {
			return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, f.name, MaxText)
		}
	}
	for _, o := range a.Omitted {
		if !Omittable(o) {
			return fmt.Errorf("%w: omitted %q is not query, context, arguments or params", ErrInvalid, cut(o))
		}
	}
	if len(a.Omitted) > 4 {
		return fmt.Errorf("%w: %d omitted fields", ErrInvalid, len(a.Omitted))
	}
	for _, s := range append(append([]string(nil), a.Chain...), a.Approvers...) {
		if s == "" || len(s) > MaxText {
			return fmt.Errorf("%w: empty or oversized chain member or approver", ErrInvalid)
		}
	}
	return nil
}

// Decision is a person's answer to a pending approval.
type Decision struct {
	ID      string
	Approve bool   // false: deny
	By      string // who decided (required)
	Reason  string // why (optional)
}

// Validate checks a decision before it is applied.
func (d *Decision) Validate() error {
	switch {
	case !ValidID(d.ID):
		return fmt.Errorf("%w: id %q is not an approval id", ErrInvalid, cut(d.ID))
	case d.By == "" || len(d.By) > MaxDecidedBy:
		return fmt.Errorf("%w: who decided is required, at most %d bytes", ErrInvalid, MaxDecidedBy)
	case len(d.Reason) > MaxReason:
		return fmt.Errorf("%w: reason longer than %d bytes", ErrInvalid, MaxReason)
	}
	return nil
}

// Filter selects approvals for List, newest first.
type Filter struct {
	Status  Status // "": any
	AgentID string // "": any
	// Before is a page cursor: only approvals whose id sorts before it
	// (the last id of the previous page). "": from the newest.
	Before string
	Limit  int // 1..MaxList; 0: DefaultList
}

// Validate checks f and fills the default limit.
func (f *Filter) Validate() error {
	switch {
	case f.Status != "" && !f.Status.Valid():
		return fmt.Errorf("%w: status %q (expected pending, approved, denied, expired or used)", ErrInvalid, cut(string(f.Status)))
	case f.Before != "" && !ValidID(f.Before):
		return fmt.Errorf("%w: cursor %q is not an approval id", ErrInvalid, cut(f.Before))
	case len(f.AgentID) > MaxText:
		return fmt.Errorf("%w: agent id longer than %d bytes", ErrInvalid, MaxText)
	case f.Limit < 0 || f.Limit > MaxList:
		return fmt.Errorf("%w: limit %d is outside 1..%d", ErrInvalid, f.Limit, MaxList)
	case f.Limit == 0:
		f.Limit = DefaultList
	}
	return nil
}

// cut keeps error messages short: at most 64 bytes of a value.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
