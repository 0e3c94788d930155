package engine

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/edge"
)

// auditRecord is the audit record (docs/audit.md) of a decision. Its id is the
// decision id with an audit prefix, so the two are joined without a lookup.
func auditRecord(r *Request, d *Decision, latency time.Duration) audit.Record {
	rec := audit.Record{
		ID: "aud_" + d.ID[len("dec_"):], Timestamp: d.Time, TraceID: d.TraceID, SpanID: d.SpanID, DecisionID: d.ID,
		AgentID: d.AgentID, AgentName: d.AgentName, Action: d.Action, Resource: d.Resource,
		Method: recordable(r.Method, 16), Path: recordable(r.Path, MaxPathLen), Host: recordable(r.Host, MaxHostLen),
		Decision: d.Effect, Status: d.Status,
		Reason: d.Reason, Policy: d.Policy, Rule: d.Rule, Chain: d.Chain,
		Source: string(d.Source), SourceAddress: r.SourceAddress, Proxy: r.Proxy, PolicyRevision: d.Revision,
		LatencyUs: latency.Microseconds(), Mode: string(d.Mode),
	}
	if d.AgentID != "" {
		rec.TrustTier = d.Tier.String()
	}
	if n := len(d.Chain); n > 1 {
		rec.DelegationDepth = n - 1
	}
	rec.Context = d.Context
	if c := d.Call; c != nil {
		rec.Call = recordCall(c)
	}
	rec.Approval = recordApproval(d)
	return rec
}

// recordCall is the audit record's view of the call decided on. The
// parser bounded and checked every field (agentproto.MaxName, the text
// rule). The arguments' digest is left to the writer, off the decision's
// path (docs/mcp.md "Arguments").
func recordCall(c *agentproto.Call) *audit.Call {
	ac := &audit.Call{Protocol: string(c.Protocol), Method: c.Method, Name: c.Name, JSONRPCID: c.ID,
		Notification: c.Notification, HeaderOnly: c.HeaderOnly, SessionID: c.SessionID, TaskID: c.TaskID, ContextID: c.ContextID}
	if c.HasArguments && !c.HeaderOnly {
		ac.SetArguments(c.RawArguments)
	}
	return ac
}

// recordable is raw request input fit for the audit trail, whatever the
// decision thought of it: cut to limit bytes, invalid UTF-8 and control
// characters replaced. A request refused for an oversized path or a NUL in
// it is still recorded, and its record must not be what a store (or the
// filter's shipping) then refuses.
func recordable(s string, limit int) string {
	clean := len(s) <= limit && utf8.ValidString(s) && !edge.HasControl(s)
	if clean {
		return s
	}
	var b strings.Builder
	for _, c := range strings.ToValidUTF8(s, "\uFFFD") {
		if b.Len()+utf8.RuneLen(c) > limit-len("…") {
			b.WriteString("…")
			break
		}
		if edge.IsControl(c) {
			c = '\uFFFD'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// NewAuditID returns a fresh audit record id, time-ordered like the
// engine's own: for records MeshGuard stores on another's behalf (the wasm
// filter's), whose ids it does not take on trust.
func NewAuditID(at time.Time) string { return newID("aud_", 12, at) }

// Unavailable is what an adapter tells the caller of a Check that failed
// (fail closed): why, in words safe to show — never the error itself,
// which may name internals.
func Unavailable(err error) string {
	if errors.Is(err, audit.ErrUnavailable) {
		return "MeshGuard cannot record decisions (its audit store is failing or behind) and refuses to decide until it can; failing closed"
	}
	return "MeshGuard could not decide this request (see its logs); failing closed"
}
