package engine

import (
	"time"

	"github.com/meshguard/meshguard/audit"
)

// auditRecord is the SPEC §7 record of a decision. Its id is the decision
// id with an audit prefix, so the two are joined without a lookup.
func auditRecord(r *Request, d *Decision, latency time.Duration) audit.Record {
	rec := audit.Record{
		ID: "aud_" + d.ID[len("dec_"):], Timestamp: d.Time, TraceID: d.TraceID, SpanID: d.SpanID, DecisionID: d.ID,
		AgentID: d.AgentID, AgentName: d.AgentName, Action: d.Action, Resource: d.Resource,
		Method: r.Method, Path: r.Path, Host: r.Host, Decision: d.Effect, Status: d.Status,
		Reason: d.Reason, Policy: d.Policy, Rule: d.Rule, Chain: d.Chain,
		Source: string(d.Source), SourceAddress: r.SourceAddress, PolicyRevision: d.Revision,
		LatencyUs: latency.Microseconds(), Mode: string(d.Mode),
	}
	if d.AgentID != "" {
		rec.TrustTier = d.Tier.String()
	}
	if n := len(d.Chain); n > 1 {
		rec.DelegationDepth = n - 1
	}
	rec.Context = d.Context
	return rec
}

// NewAuditID returns a fresh audit record id, time-ordered like the
// engine's own: for records MeshGuard stores on another's behalf (the wasm
// filter's), whose ids it does not take on trust.
func NewAuditID(at time.Time) string { return newID("aud_", 12, at) }
