// Package alert turns MeshGuard's decisions and failures into alerts
// (docs/alerting.md): which triggers fire (ALERT_ON), how severe an alert is,
// the payload every provider sends, and the providers themselves — a signed
// webhook and a Slack incoming webhook so far.
package alert

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// Trigger is why an alert was raised.
type Trigger string

// Triggers. Test is `meshguard alerts test`'s, never configured.
const (
	TriggerDeny      Trigger = "deny"
	TriggerError     Trigger = "error"
	TriggerRateLimit Trigger = "rate_limit"
	TriggerTest      Trigger = "test"
)

// Severity ranks an alert.
type Severity string

// Severities (docs/alerting.md).
const (
	SeverityCritical Severity = "critical"
	SeverityWarning  Severity = "warning"
	SeverityInfo     Severity = "info"
)

// ErrInvalidTriggers is returned by ParseTriggers.
var ErrInvalidTriggers = errors.New("invalid alert triggers")

// Triggers is the set ALERT_ON configures.
type Triggers map[Trigger]bool

// ParseTriggers reads ALERT_ON: a comma list of deny, error and
// rate_limit, or all. Empty means none. An unknown name is an error that
// names it, so a misspelt trigger cannot silently turn alerting off.
func ParseTriggers(s string) (Triggers, error) {
	t := Triggers{}
	for _, name := range strings.Split(s, ",") {
		switch name = strings.TrimSpace(name); Trigger(name) {
		case "":
		case "all":
			t[TriggerDeny], t[TriggerError], t[TriggerRateLimit] = true, true, true
		case TriggerDeny, TriggerError, TriggerRateLimit:
			t[Trigger(name)] = true
		default:
			return nil, fmt.Errorf("%w: %q (expected deny, error, rate_limit or all, comma-separated)", ErrInvalidTriggers, name)
		}
	}
	return t, nil
}

// Names lists the triggers set, in a fixed order.
func (t Triggers) Names() []string {
	var out []string
	for _, tr := range []Trigger{TriggerDeny, TriggerError, TriggerRateLimit} {
		if t[tr] {
			out = append(out, string(tr))
		}
	}
	return out
}

// Entry is what an alert says of the decision behind it.
type Entry struct {
	TraceID    string `json:"traceId"`
	AgentID    string `json:"agentId"`
	AgentName  string `json:"agentName"`
	TrustTier  string `json:"trustTier"`
	Action     string `json:"action"`
	Method     string `json:"method"`
	Path       string `json:"path"`
	Decision   string `json:"decision"`
	PolicyName string `json:"policyName"`
	Reason     string `json:"reason"`
}

// Alert is the payload of docs/alerting.md, as the webhook sends it; the other
// providers render the same fields.
type Alert struct {
	Event       string    `json:"event"`   // always "meshguard.alert"
	Version     string    `json:"version"` // the payload's version, "1.0"
	ID          string    `json:"id"`
	Timestamp   time.Time `json:"timestamp"`
	Severity    Severity  `json:"severity"`
	Trigger     Trigger   `json:"trigger"`
	Title       string    `json:"title"`
	Message     string    `json:"message"`
	Entry       Entry     `json:"entry"`
	Instance    string    `json:"instance"`
	Environment string    `json:"environment"`
	// Approval is the request a person is asked to approve (trigger
	// approval, event meshguard.approval only).
	Approval *ApprovalRequest `json:"approval,omitempty"`
}

// reasonApprovalRequired is engine.ReasonApprovalRequired (alert builds
// on no engine).
const reasonApprovalRequired = "approval_required"

// Payload identity.
const (
	Event   = "meshguard.alert"
	Version = "1.0"
)

// Origin names the MeshGuard an alert comes from (ALERT_INSTANCE_NAME,
// ALERT_ENVIRONMENT).
type Origin struct {
	Instance, Environment string
}

// ForDecision returns the alert a recorded decision raises under t, and
// false when it raises none: an allow, or a denial whose trigger is not
// configured. A 429 is a rate_limit, any other denial a deny.
func ForDecision(rec *audit.Record, t Triggers, o Origin) (Alert, bool) {
	if rec.Decision != "deny" || rec.Reason == reasonApprovalRequired {
		// A request waiting for a person is announced once, by the
		// approval alert, not as a denial on each retry.
		return Alert{}, false
	}
	trigger := TriggerDeny
	if rec.Status == 429 {
		trigger = TriggerRateLimit
	}
	if !t[trigger] {
		return Alert{}, false
	}
	a := newAlert(trigger, rec.Timestamp, o)
	a.Entry = Entry{
		TraceID: rec.TraceID, AgentID: rec.AgentID, AgentName: rec.AgentName, TrustTier: rec.TrustTier,
		Action: rec.Action, Method: rec.Method, Path: pathOnly(rec.Path), Decision: rec.Decision, PolicyName: rec.Policy, Reason: rec.Reason,
	}
	a.Severity = severity(trigger, &a.Entry)
	who := orUnknown(rec.AgentName)
	switch trigger {
	case TriggerRateLimit:
		a.Title = "Rate limit hit by " + who
		a.Message = fmt.Sprintf("%s exceeded a rate limit on %s (%s).", who, orUnknown(rec.Action), orUnknown(rec.Policy))
	default:
		a.Title = "Denied: " + who + " → " + orUnknown(rec.Action)
		// A /v1/check question has no method or path: say nothing of
		// them rather than "on  :".
		on := ""
		if req := strings.TrimSpace(rec.Method + " " + a.Entry.Path); req != "" {
			on = " on " + req
		}
		a.Message = fmt.Sprintf("%s was denied %s%s: %s.", who, orUnknown(rec.Action), on, orUnknown(rec.Reason))
	}
	return a, true
}

// pathOnly is a request target without its query string or fragment: an
// alert leaves MeshGuard (Slack, a webhook, email), and a query may hold
// a token (?access_token=…). The audit record keeps the whole target.
func pathOnly(target string) string {
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		return target[:i]
	}
	return target
}

// ForError returns the alert for one of MeshGuard's own failures (the
// store refusing writes, a decision it could not make): always critical.
func ForError(what string, err error, at time.Time, o Origin) Alert {
	a := newAlert(TriggerError, at, o)
	a.Severity = SeverityCritical
	a.Title = "MeshGuard error: " + what
	a.Message = what + ": " + err.Error()
	return a
}

// ForTest returns the clearly marked test alert of `meshguard alerts test`.
func ForTest(at time.Time, o Origin) Alert {
	a := newAlert(TriggerTest, at, o)
	a.Severity = SeverityInfo
	a.Title = "MeshGuard test alert"
	a.Message = "This is a test alert from `meshguard alerts test`. No action is needed."
	return a
}

func newAlert(t Trigger, at time.Time, o Origin) Alert {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms (Go 1.24+)
	return Alert{Event: Event, Version: Version, ID: "alt_" + hex.EncodeToString(b[:]), Timestamp: at.UTC(), Trigger: t,
		Instance: o.Instance, Environment: o.Environment}
}

// severity is the rule of docs/alerting.md: errors, and denials of privileged
// agents or of admin:* actions, are critical; other denials and rate limits
// warnings.
func severity(t Trigger, e *Entry) Severity {
	switch {
	case t == TriggerError:
		return SeverityCritical
	case t == TriggerDeny && (e.TrustTier == "privileged" || strings.HasPrefix(e.Action, "admin:")):
		return SeverityCritical
	}
	return SeverityWarning
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
