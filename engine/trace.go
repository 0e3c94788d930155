package engine

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
)

// Span names and attributes (docs/tracing.md).
const (
	SpanCheck      = "meshguard.check"
	SpanEvaluate   = "meshguard.policy.evaluate"
	SpanDelegation = "meshguard.delegation.check"
	SpanAudit      = "meshguard.audit.write"
	// SpanHandOff is the check that the chain, with the actor appended,
	// may hand the task to the target agent.
	SpanHandOff = "meshguard.delegation.handoff"

	AttrAgentID         = attribute.Key("meshguard.agent_id")
	AttrAction          = attribute.Key("meshguard.action")
	AttrDecision        = attribute.Key("meshguard.decision")
	AttrPolicyName      = attribute.Key("meshguard.policy_name")
	AttrReason          = attribute.Key("meshguard.reason")
	AttrDelegationDepth = attribute.Key("meshguard.delegation.depth")
	AttrDelegationChain = attribute.Key("meshguard.delegation.chain")
	// AttrChainNames is the chain as agent names, root first.
	AttrChainNames = attribute.Key("meshguard.delegation.chain_names")
	// What joins a span to its audit record and answer.
	AttrDecisionID = attribute.Key("meshguard.decision_id")
	AttrStatus     = attribute.Key("meshguard.status")
	AttrSource     = attribute.Key("meshguard.source")
	AttrRule       = attribute.Key("meshguard.rule")
	AttrMessage    = attribute.Key("meshguard.message")
	// Who and where, for people reading a trace: the caller's name, the
	// agent the request goes to (OpenTelemetry's GenAI conventions name
	// the agent invoked gen_ai.agent.*), and the request's host and path.
	AttrAgentName    = attribute.Key("meshguard.agent_name")
	AttrGenAIAgentID = attribute.Key("gen_ai.agent.id")
	AttrGenAIAgent   = attribute.Key("gen_ai.agent.name")
	AttrHost         = attribute.Key("server.address")
	AttrPath         = attribute.Key("url.path")
)

// EventDenied is recorded on the check span of every denial.
const EventDenied = "meshguard.denied"

// SpanInvokeAgent names the check span of a request that goes to an agent,
// as OpenTelemetry's GenAI conventions name a call to an agent:
// "invoke_agent {the agent's name}". Other requests' check spans are
// SpanCheck.
const SpanInvokeAgent = "invoke_agent"

// AttrGenAIOperation is GenAI's gen_ai.operation.name.
const AttrGenAIOperation = attribute.Key("gen_ai.operation.name")

// IsCheckSpan reports whether a span name is a decision's check span.
func IsCheckSpan(name string) bool {
	return name == SpanCheck || strings.HasPrefix(name, SpanInvokeAgent+" ")
}

// startCheck starts the decision's meshguard.check span as a child of the
// request's traceparent (a remote parent), and fills d's trace and span
// ids: the span's when the tracer made one, fresh ones otherwise (the
// no-op tracer only hands the parent back). Without a tracer (serve
// without an exporter) no span is started at all: a never-sampling SDK
// tracer would only make ids, at ≈ 7% of a Check.
func (e *Engine) startCheck(ctx context.Context, r *Request, d *Decision) (context.Context, trace.Span) {
	if e.tracer == nil {
		d.SpanID = e.newID("", 8, time.Time{})
		d.ParentsUpstream = r.ParentSpanID == ""
		return ctx, noSpan
	}
	if r.TraceID != "" && r.ParentSpanID != "" {
		tid, terr := trace.TraceIDFromHex(r.TraceID)
		sid, serr := trace.SpanIDFromHex(r.ParentSpanID)
		if terr == nil && serr == nil {
			var flags trace.TraceFlags
			if r.TraceSampled {
				flags = trace.FlagsSampled
			}
			ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true,
			}))
		}
	}
	ctx, span := e.tracer.Start(ctx, SpanCheck, trace.WithSpanKind(trace.SpanKindServer))
	sc := span.SpanContext()
	if sc.IsValid() && !sc.IsRemote() {
		d.TraceID, d.SpanID = sc.TraceID().String(), sc.SpanID().String()
		d.TraceSampled = sc.IsSampled() && span.IsRecording()
	} else {
		d.SpanID = e.newID("", 8, time.Time{})
	}
	// The upstream's parent is the check span when it is exported; when
	// MeshGuard started the trace, the upstream joins the trace id the
	// audit record carries. Otherwise the caller's traceparent stays.
	d.ParentsUpstream = d.TraceSampled || r.ParentSpanID == ""
	return ctx, span
}

// recordDenial records a denial the sampler dropped, with the denial
// tracer: a span named name (meshguard.check, meshguard.delegate) under
// the caller's span, with the decision's ids (so the audit record names
// it), from now on.
func (e *Engine) recordDenial(r *Request, d *Decision, start time.Time, name string) {
	tid, terr := trace.TraceIDFromHex(d.TraceID)
	sid, serr := trace.SpanIDFromHex(d.SpanID)
	if terr != nil || serr != nil || e.cfg.WithSpanIDs == nil {
		return
	}
	ctx := context.Background()
	if r.ParentSpanID != "" {
		if pid, err := trace.SpanIDFromHex(r.ParentSpanID); err == nil {
			ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: pid, Remote: true}))
		}
	}
	_, span := e.cfg.DenialTracer.Start(e.cfg.WithSpanIDs(ctx, tid, sid), name,
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
	endCheck(span, r, d, nil)
}

// traceOfDelegation takes the trace context of the delegation token a
// request carries when the request itself carries none: the agent dropped
// the traceparent, and the hop still joins the chain's trace, under the
// decision that handed the task on. A token that does not verify is left
// to the chain check to deny.
func (e *Engine) traceOfDelegation(r *Request) {
	if r.ParentSpanID != "" || r.Delegation == "" {
		return
	}
	if g, err := e.cfg.Delegations.VerifyDelegation(r.Delegation); err == nil && g.Traceparent != "" {
		r.SetTraceparent(g.Traceparent)
	}
}

// noSpan is the span of a decision made without a tracer: it records
// nothing (trace.SpanFromContext's no-op span, which allocates nothing).
var noSpan = trace.SpanFromContext(context.Background())

// child starts a span under ctx's, or returns the no-op span when ctx's is
// not recording: unsampled decisions pay nothing for the detail.
func (e *Engine) child(ctx context.Context, name string) trace.Span {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return noSpan
	}
	_, s := e.tracer.Start(ctx, name)
	return s
}

// endCheck records the decision on the check span and ends it. A denial
// sets the span's status to Error, described by its reason, and records
// an event with the reason, status and message, so a denied hop stands out
// in any tracing backend; an allow leaves the status Unset.
func endCheck(span trace.Span, r *Request, d *Decision, err error) {
	if span.IsRecording() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "MeshGuard could not decide")
		} else {
			attrs := []attribute.KeyValue{
				AttrDecisionID.String(d.ID), AttrSource.String(string(d.Source)),
				AttrAgentID.String(d.AgentID), AttrAgentName.String(d.AgentName), AttrAction.String(d.Action), AttrDecision.String(d.Effect),
				AttrStatus.Int(d.Status), AttrPolicyName.String(d.Policy), AttrRule.String(d.Rule), AttrReason.String(d.Reason),
				AttrDelegationDepth.Int(max(len(d.Chain)-1, 0)), AttrDelegationChain.StringSlice(d.Chain),
			}
			if len(d.ChainNames) > 0 {
				attrs = append(attrs, AttrChainNames.StringSlice(d.ChainNames))
			}
			// As the audit record has them (recordable): a request refused
			// for its host or path is traced too, and one invalid UTF-8
			// string would fail the exporter's whole OTLP batch.
			if r.Host != "" {
				attrs = append(attrs, AttrHost.String(recordable(r.Host, MaxHostLen)))
			}
			if p := splitPath(r.Path); p != "" {
				attrs = append(attrs, AttrPath.String(recordable(p, MaxPathLen))) // never the query: it may hold secrets
			}
			if d.TargetName != "" {
				span.SetName(SpanInvokeAgent + " " + d.TargetName)
				attrs = append(attrs, AttrGenAIOperation.String(SpanInvokeAgent), AttrGenAIAgent.String(d.TargetName))
				if d.TargetAgent != "" {
					attrs = append(attrs, AttrGenAIAgentID.String(d.TargetAgent))
				}
			}
			if d.Call != nil {
				attrs = callAttributes(attrs, d.Call, d.TargetName == "")
			}
			span.SetAttributes(attrs...)
			if d.Effect == "deny" {
				span.SetStatus(codes.Error, d.Reason)
				span.AddEvent(EventDenied, trace.WithAttributes(AttrReason.String(d.Reason), AttrStatus.Int(d.Status), AttrMessage.String(d.Message)))
			}
		}
	}
	span.End()
}

// The agent-protocol call's attributes, as OpenTelemetry's GenAI and MCP
// conventions name them (docs/tracing.md).
const (
	OperationExecuteTool = "execute_tool"
	AttrGenAIToolName    = attribute.Key("gen_ai.tool.name")
	AttrGenAIPromptName  = attribute.Key("gen_ai.prompt.name")
	AttrMCPMethod        = attribute.Key("mcp.method.name")
	AttrMCPSession       = attribute.Key("mcp.session.id")
	AttrMCPResourceURI   = attribute.Key("mcp.resource.uri")
	AttrJSONRPCID        = attribute.Key("jsonrpc.request.id")
	AttrA2AMethod        = attribute.Key("a2a.method.name")
	AttrA2ATask          = attribute.Key("a2a.task.id")
	AttrA2AContext       = attribute.Key("a2a.context.id")
)

// callAttributes appends what a call is — never its arguments, which may
// hold anything. The parser checked every field (bounded, valid UTF-8, no
// control characters). operation: the span may take GenAI's operation name
// (a call to an agent host already has invoke_agent).
func callAttributes(attrs []attribute.KeyValue, c *agentproto.Call, operation bool) []attribute.KeyValue {
	if c.ID != "" {
		// The id's value: a string id without its JSON quotes.
		id := c.ID
		if id[0] == '"' {
			_ = json.Unmarshal([]byte(c.ID), &id) // the parser encoded it: cannot fail
		}
		attrs = append(attrs, AttrJSONRPCID.String(id))
	}
	if c.Protocol == agentproto.A2A {
		attrs = append(attrs, AttrA2AMethod.String(c.Method))
		if c.TaskID != "" {
			attrs = append(attrs, AttrA2ATask.String(c.TaskID))
		}
		if c.ContextID != "" {
			attrs = append(attrs, AttrA2AContext.String(c.ContextID))
		}
		return attrs
	}
	attrs = append(attrs, AttrMCPMethod.String(c.Method))
	if c.SessionID != "" {
		attrs = append(attrs, AttrMCPSession.String(c.SessionID))
	}
	switch c.Method {
	case "tools/call":
		attrs = append(attrs, AttrGenAIToolName.String(c.Name))
		if operation {
			attrs = append(attrs, AttrGenAIOperation.String(OperationExecuteTool))
		}
	case "prompts/get":
		attrs = append(attrs, AttrGenAIPromptName.String(c.Name))
	case "resources/read":
		attrs = append(attrs, AttrMCPResourceURI.String(c.Name))
	}
	return attrs
}

// endDelegation ends the delegation span with the chain and, when the
// chain is why the request was denied, that reason and an Error status; a
// denial at the hand-off to the next agent is the hand-off span's.
func endDelegation(span trace.Span, d *Decision, handOffDenied bool) {
	if span.IsRecording() {
		reason := ""
		if d.Effect == "deny" && !handOffDenied && strings.HasPrefix(d.Reason, "delegation_") {
			reason = d.Reason
			span.SetStatus(codes.Error, reason)
		}
		span.SetAttributes(AttrDelegationDepth.Int(len(d.Chain)-1), AttrDelegationChain.StringSlice(d.Chain), AttrReason.String(reason))
	}
	span.End()
}

// endHandOff ends the hand-off span with the target and its verdict.
func endHandOff(span trace.Span, target *identity.Agent, hd *policy.Decision) {
	if span.IsRecording() {
		span.SetAttributes(AttrGenAIAgentID.String(target.ID), AttrGenAIAgent.String(target.Name),
			AttrDecision.String(string(hd.Effect)), AttrReason.String(hd.Reason), AttrPolicyName.String(hd.Policy))
		if !hd.Allowed() {
			span.SetStatus(codes.Error, hd.Reason)
		}
	}
	span.End()
}
