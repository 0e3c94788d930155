package engine

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
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
	rec.Inputs = d.inputs.record(r, d)
	rec.Approval = recordApproval(d)
	rec.Shadow = recordShadow(d)
	return rec
}

// recordInputs is what the policies read of a decision that reached
// them, for the record's inputs (audit.Inputs): kept as the decision has
// it and turned into the record's form only when it is recorded.
type recordInputs struct {
	set           bool // policy was evaluated
	policyAllowed bool // and allowed: a deny came from a later step
	actor         policy.Subject
	members       []policy.Subject
	scope         []string
	keys          []string // the set's request keys (policy.Set.RequestKeys)
}

// record is the record's inputs, nil when policy was not evaluated. The
// request values the policies read and did not find are listed (Absent),
// so a replay tells "absent" from "not looked up"; at POST /v1/check the
// context is the caller's whole context and needs no such list. An
// arguments.* key is not listed for a request that is no call (it has no
// arguments) or a call decided on its headers (its arguments are unknown,
// and its record says so: call.headerOnly).
func (ri *recordInputs) record(r *Request, d *Decision) *audit.Inputs {
	if !ri.set {
		return nil
	}
	in := &audit.Inputs{Tags: ri.actor.Tags, Revoked: !ri.actor.Active, Scope: ri.scope,
		// An approval's denial is the policy's approve, not a later step's.
		AfterPolicy: ri.policyAllowed && d.Effect == "deny" && !approval.IsReason(d.Reason)}
	if len(ri.members) > 0 {
		in.Chain = make([]audit.ChainMember, len(ri.members))
		for i := range ri.members {
			m := &ri.members[i]
			in.Chain[i] = audit.ChainMember{Name: m.Name, Tier: m.Tier.String(), Tags: m.Tags, Revoked: !m.Active}
		}
	}
	if !r.cooperative() {
		for _, k := range ri.keys {
			if _, ok := d.Context[k]; ok || policy.IsArgumentsKey(k) && (d.Call == nil || d.Call.HeaderOnly) {
				continue
			}
			in.Absent = append(in.Absent, k)
		}
	}
	return in
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
