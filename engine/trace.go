package engine

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Span names and attributes (docs/tracing.md).
const (
	SpanCheck      = "meshguard.check"
	SpanEvaluate   = "meshguard.policy.evaluate"
	SpanDelegation = "meshguard.delegation.check"
	SpanAudit      = "meshguard.audit.write"

	AttrAgentID         = attribute.Key("meshguard.agent_id")
	AttrAction          = attribute.Key("meshguard.action")
	AttrDecision        = attribute.Key("meshguard.decision")
	AttrPolicyName      = attribute.Key("meshguard.policy_name")
	AttrReason          = attribute.Key("meshguard.reason")
	AttrDelegationDepth = attribute.Key("meshguard.delegation.depth")
	AttrDelegationChain = attribute.Key("meshguard.delegation.chain")
	// What joins a span to its audit record and answer.
	AttrDecisionID = attribute.Key("meshguard.decision_id")
	AttrStatus     = attribute.Key("meshguard.status")
	AttrSource     = attribute.Key("meshguard.source")
	AttrRule       = attribute.Key("meshguard.rule")
)

// noopTracer is used when Config.Tracer is nil.
var noopTracer trace.Tracer = noop.NewTracerProvider().Tracer("")

// startCheck starts the decision's meshguard.check span as a child of the
// request's traceparent (a remote parent), and fills d's trace and span
// ids: the span's when the tracer made one, fresh ones otherwise (the
// no-op tracer only hands the parent back).
func (e *Engine) startCheck(ctx context.Context, r *Request, d *Decision) (context.Context, trace.Span) {
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
	} else {
		d.SpanID = newID("", 8, time.Time{})
	}
	return ctx, span
}

// child starts a span under ctx's, or returns the no-op span when ctx's is
// not recording: unsampled decisions pay nothing for the detail.
func (e *Engine) child(ctx context.Context, name string) trace.Span {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return trace.SpanFromContext(context.Background())
	}
	_, s := e.tracer.Start(ctx, name)
	return s
}

// endCheck records the decision on the check span and ends it.
func endCheck(span trace.Span, d *Decision, err error) {
	if span.IsRecording() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "MeshGuard could not decide")
		} else {
			span.SetAttributes(
				AttrDecisionID.String(d.ID), AttrSource.String(string(d.Source)),
				AttrAgentID.String(d.AgentID), AttrAction.String(d.Action), AttrDecision.String(d.Effect),
				AttrStatus.Int(d.Status), AttrPolicyName.String(d.Policy), AttrRule.String(d.Rule), AttrReason.String(d.Reason),
				AttrDelegationDepth.Int(max(len(d.Chain)-1, 0)), AttrDelegationChain.StringSlice(d.Chain),
			)
		}
	}
	span.End()
}
