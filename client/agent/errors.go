package agent

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
)

// Kind says why a call did not return an allow. Callers branch on the
// sentinel errors below with errors.Is.
type Kind string

// The kinds of Error, the same names in every SDK (sdk/conformance).
const (
	// KindDenied: MeshGuard decided, and the answer is no (403).
	KindDenied Kind = "denied"
	// KindUnauthorized: the token is missing, invalid, expired or revoked (401).
	KindUnauthorized Kind = "unauthorized"
	// KindRateLimited: a rate limit refused the call (429); RetryAfter says when to try again.
	KindRateLimited Kind = "rate_limited"
	// KindBadRequest: MeshGuard refused what was asked as malformed (400, 413, 415).
	KindBadRequest Kind = "bad_request"
	// KindUnavailable: MeshGuard could not be asked or its answer could not
	// be read (network failure, timeout, 5xx, a body that is no decision).
	// It is never an allow.
	KindUnavailable Kind = "unavailable"
)

// Sentinel errors, one per kind: errors.Is(err, ErrDenied) holds for an
// *Error of kind denied.
var (
	ErrDenied       = errors.New("meshguard: denied")
	ErrUnauthorized = errors.New("meshguard: unauthorized")
	ErrRateLimited  = errors.New("meshguard: rate limited")
	ErrBadRequest   = errors.New("meshguard: bad request")
	ErrUnavailable  = errors.New("meshguard: unavailable")
)

// Sentinel errors for a human approval (docs/governance.md), matched by
// the reason of an *Error whatever its kind: an approval_required error is
// also ErrDenied, an approval_limit one also ErrRateLimited, so code that
// branches on the kinds alone keeps failing closed.
var (
	// ErrApprovalRequired: the request waits on a person's approval
	// (Error.ApprovalID names it; WaitForApproval waits on it).
	ErrApprovalRequired = errors.New("meshguard: approval required")
	// ErrApprovalDenied: a person denied the approval.
	ErrApprovalDenied = errors.New("meshguard: approval denied")
	// ErrApprovalExpired: the approval expired undecided, or was used.
	ErrApprovalExpired = errors.New("meshguard: approval expired")
	// ErrApprovalLimit: the agent has too many approvals pending (429).
	ErrApprovalLimit = errors.New("meshguard: too many approvals pending")
	// ErrApprovalTimeout: WaitForApproval gave up while the approval was
	// still pending. It is also ErrApprovalRequired: never an allow.
	ErrApprovalTimeout = errors.New("meshguard: approval still pending when the wait ended")
)

// The reason codes of a human approval's answers.
const (
	ReasonApprovalRequired = "approval_required"
	ReasonApprovalDenied   = "approval_denied"
	ReasonApprovalExpired  = "approval_expired"
	ReasonApprovalLimit    = "approval_limit"
)

var approvalSentinels = map[string]error{
	ReasonApprovalRequired: ErrApprovalRequired, ReasonApprovalDenied: ErrApprovalDenied,
	ReasonApprovalExpired: ErrApprovalExpired, ReasonApprovalLimit: ErrApprovalLimit,
}

var sentinels = map[Kind]error{
	KindDenied: ErrDenied, KindUnauthorized: ErrUnauthorized, KindRateLimited: ErrRateLimited,
	KindBadRequest: ErrBadRequest, KindUnavailable: ErrUnavailable,
}

// Error is every failure of a call: what kind it is, the HTTP status (0
// when there was no answer), and what MeshGuard said about it. It never
// holds a token.
type Error struct {
	Kind   Kind
	Op     string // "check" or "delegate"
	Status int
	// Reason is the decision's reason code (rule_deny, agent_revoked,
	// rate_limited, delegation_scope, …) when MeshGuard sent one.
	Reason string
	// Action is the action MeshGuard refused, when its answer names it (a
	// gateway's deny body).
	Action     string
	Message    string
	TraceID    string
	DecisionID string
	// RetryAfter is how long MeshGuard asked the caller to wait (429, 503).
	RetryAfter time.Duration
	// ApprovalID and ApprovalURL name the human approval the answer is
	// about (reasons approval_required, approval_denied, approval_expired).
	ApprovalID  string
	ApprovalURL string
	// Decision is the whole decision when the answer was one (a denial).
	Decision *api.Decision
	// Err is the cause when there was no usable answer (the network error,
	// the decoding error).
	Err error

	// waitEnded: WaitForApproval's wait ended with the approval pending.
	waitEnded bool
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "meshguard %s: %s", e.Op, e.Kind)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (%d)", e.Status)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.ApprovalID != "" {
		b.WriteString(" [approval " + e.ApprovalID + "]")
	}
	if e.TraceID != "" {
		b.WriteString(" [trace " + e.TraceID + "]")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is matches the sentinel of e's kind, and of its approval reason.
func (e *Error) Is(target error) bool {
	if target == nil {
		return false
	}
	if target == ErrApprovalTimeout {
		return e.waitEnded
	}
	if sentinels[e.Kind] == target {
		return true
	}
	return (e.Kind == KindDenied || e.Kind == KindRateLimited) && approvalSentinels[e.Reason] == target
}

// Unwrap is the cause (a context's error, a network error), if any.
func (e *Error) Unwrap() error { return e.Err }

// kindOf is the kind of an error status.
func kindOf(status int) Kind {
	switch status {
	case 401:
		return KindUnauthorized
	case 403:
		return KindDenied
	case 429:
		return KindRateLimited
	case 400, 413, 415, 431:
		return KindBadRequest
	}
	return KindUnavailable
}
