package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Header names of a gateway's or ext_authz's answer (docs/governance.md).
const (
	// HeaderDecision is allow or deny: MeshGuard's decision on the request.
	HeaderDecision = "X-MeshGuard-Decision"
	// HeaderApproval names the approval a 403 waits on or was refused by.
	HeaderApproval = "X-MeshGuard-Approval"
	headerMode     = "X-MeshGuard-Mode"
	headerTraceID  = "X-MeshGuard-Trace-Id"
)

const (
	// MaxWait is the longest a single held request may wait (the
	// server's bound on Prefer: wait and ?wait).
	MaxWait = 60 * time.Second
	// DefaultApprovalWait bounds WaitForApproval when ctx has no deadline.
	DefaultApprovalWait = 5 * time.Minute
	// maxApprovalIDLen bounds an approval id the SDK puts in a path.
	maxApprovalIDLen = 128
)

// CheckOption changes one Check or Require.
type CheckOption func(*checkOptions)

type checkOptions struct {
	wait         time.Duration
	approvalWait time.Duration
	err          error
}

// PreferWait asks MeshGuard to hold the answer of a check that needs a
// person's approval until the approval is decided, for at most d (whole
// seconds, 1 s to 60 s; Prefer: wait=N): the answer is then the final
// decision, allowed once when approved.
func PreferWait(d time.Duration) CheckOption {
	return func(o *checkOptions) {
		if d < time.Second || d > MaxWait {
			o.err = fmt.Errorf("PreferWait(%v): want 1s to %v", d, MaxWait)
			return
		}
		o.wait = d.Truncate(time.Second)
	}
}

// WaitingForApproval makes Require wait, for at most d, on the approval a
// request needs (WaitForApproval), then ask again once: approved, that is
// the allow; otherwise the error says why (ErrApprovalDenied,
// ErrApprovalExpired, ErrApprovalTimeout).
func WaitingForApproval(d time.Duration) CheckOption {
	return func(o *checkOptions) {
		if d <= 0 {
			o.err = fmt.Errorf("WaitingForApproval(%v): want a positive wait", d)
			return
		}
		o.approvalWait = d
	}
}

// Approval is what GET /v1/approvals/{id} answers: the state of one
// human approval (docs/governance.md).
type Approval struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"` // pending, approved, denied, expired, used
	Action    string     `json:"action"`
	Resource  string     `json:"resource,omitempty"`
	AgentID   string     `json:"agentId"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	DecidedAt *time.Time `json:"decidedAt,omitempty"`
	DecidedBy string     `json:"decidedBy,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	TraceID   string     `json:"traceId"`
}

// The states of an approval.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
	ApprovalUsed     = "used"
)

// WaitForApproval waits until the approval id (an ErrApprovalRequired
// error's ApprovalID) is decided, long-polling GET /v1/approvals/{id}, for
// as long as ctx allows (DefaultApprovalWait when ctx has no deadline).
// Approved, it returns the approval: ask again (Check, Require), and
// MeshGuard allows that request, once. Denied is an error that
// errors.Is(err, ErrApprovalDenied); expired or already used,
// ErrApprovalExpired; still pending when the wait ends, ErrApprovalTimeout
// (which is also ErrApprovalRequired). Never an allow.
//
// A poll is a GET: a connection error, a timeout and a 5xx are retried
// (at most the SDK's retries in a row), and a 429 or 503 after its
// Retry-After.
func (a *Agent) WaitForApproval(ctx context.Context, id string) (Approval, error) {
	if err := checkApprovalID(id); err != nil {
		return Approval{}, &Error{Kind: KindBadRequest, Op: "wait", Message: err.Error()}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultApprovalWait)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	trace := ""
	for {
		remaining := time.Until(deadline)
		if remaining < time.Second || ctx.Err() != nil {
			return Approval{}, pendingError(id, trace, ctx.Err())
		}
		n := min(remaining, MaxWait).Truncate(time.Second)
		started := time.Now()
		status, hdr, data, sent, err := a.send(ctx, request{op: "wait", method: http.MethodGet,
			path: "/v1/approvals/" + url.PathEscape(id), query: "wait=" + strconv.Itoa(int(n/time.Second)),
			idempotent: true, hold: n})
		trace = firstOf(trace, sent)
		if err != nil {
			if ctx.Err() != nil {
				return Approval{}, pendingError(id, trace, ctx.Err())
			}
			return Approval{}, err
		}
		if status != http.StatusOK {
			e := a.answerError("wait", status, hdr, data, trace)
			if status == http.StatusNotFound {
				e.Kind = KindBadRequest // no approval of this agent has that id
			}
			e.ApprovalID = firstOf(e.ApprovalID, id)
			return Approval{}, e
		}
		var ap Approval
		if err := unmarshalStrict(data, &ap); err != nil || ap.ID != id {
			if err == nil {
				err = fmt.Errorf("the answer is about approval %q", truncate(ap.ID, 64))
			}
			return Approval{}, &Error{Kind: KindUnavailable, Op: "wait", Status: status, Message: "the answer is not the approval", Err: err, TraceID: trace, ApprovalID: id}
		}
		trace = firstOf(validTraceID(ap.TraceID), trace)
		switch ap.Status {
		case ApprovalPending:
			// A server that answers "pending" without holding the poll (a
			// proxy, one shutting down) is polled at most once a second,
			// never in a storm.
			if err := pause(ctx, time.Second-time.Since(started)); err != nil {
				return Approval{}, pendingError(id, trace, err)
			}
			continue
		case ApprovalApproved:
			return ap, nil
		case ApprovalDenied:
			return ap, &Error{Kind: KindDenied, Op: "wait", Reason: ReasonApprovalDenied, Message: "a person denied the approval", TraceID: trace, ApprovalID: id}
		case ApprovalExpired, ApprovalUsed:
			msg := "the approval expired undecided"
			if ap.Status == ApprovalUsed {
				msg = "the approval was already used"
			}
			return ap, &Error{Kind: KindDenied, Op: "wait", Reason: ReasonApprovalExpired, Message: msg, TraceID: trace, ApprovalID: id}
		default:
			return Approval{}, &Error{Kind: KindUnavailable, Op: "wait", Status: status, Message: fmt.Sprintf("approval status %q is none MeshGuard sends", truncate(ap.Status, 32)), TraceID: trace, ApprovalID: id}
		}
	}
}

// pause waits d (nothing when d <= 0) or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pendingError is WaitForApproval's error when its wait ended first.
func pendingError(id, trace string, cause error) *Error {
	return &Error{Kind: KindDenied, Op: "wait", Reason: ReasonApprovalRequired, Message: "the approval was still pending when the wait ended",
		TraceID: trace, ApprovalID: id, Err: cause, waitEnded: true}
}

// checkApprovalID refuses an id that is not one MeshGuard makes before it
// goes into a path.
func checkApprovalID(id string) error {
	if id == "" || len(id) > maxApprovalIDLen {
		return fmt.Errorf("approval id of %d bytes: want 1 to %d", len(id), maxApprovalIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return fmt.Errorf("approval id holds %q at byte %d: want letters, digits, _ and -", c, i)
		}
	}
	return nil
}

// DenialFrom reads the answer of a request made through MeshGuard's
// gateway or an Envoy with MeshGuard's ext_authz: when MeshGuard refused
// the request (X-MeshGuard-Decision: deny on an error status, outside
// audit mode), it returns that refusal as an *Error — ErrApprovalRequired
// naming the approval, ErrDenied with the reason and trace id,
// ErrUnauthorized, ErrRateLimited with RetryAfter — and nil otherwise: an
// upstream's own 403 is not MeshGuard's. It reads the body (up to
// MaxAnswerBytes) and puts it back, so the caller can still read it.
func DenialFrom(resp *http.Response) error {
	if resp == nil || !strings.EqualFold(resp.Header.Get(HeaderDecision), "deny") ||
		strings.EqualFold(resp.Header.Get(headerMode), "audit") || resp.StatusCode < 400 {
		return nil
	}
	var data []byte
	if resp.Body != nil {
		var err error
		data, err = io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(data), resp.Body), resp.Body}
		if err != nil {
			data = nil
		}
	}
	e := errorFrom("gateway", resp.StatusCode, resp.Header, data, validTraceID(resp.Header.Get(headerTraceID)), func(s string) string { return s })
	if e.Kind == KindUnavailable && resp.StatusCode < 500 {
		e.Kind = KindDenied // MeshGuard said deny with a status the SDK has no kind for
	}
	return e
}
