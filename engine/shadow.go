package engine

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/policy"
)

// ShadowObserver is told of every decision whose shadow answer differs
// from the one enforced (telemetry.Metrics' meshguard_shadow_disagreements_total).
// An Observer that also implements it is told; it runs on the Check path.
type ShadowObserver interface {
	ShadowDisagreed(policy, enforced, shadow string)
}

// The evaluate span's attributes of a differing shadow answer (docs/tracing.md).
const (
	AttrShadowDecision = attribute.Key("meshguard.shadow.decision")
	AttrShadowReason   = attribute.Key("meshguard.shadow.reason")
	AttrShadowPolicy   = attribute.Key("meshguard.shadow.policy")
	AttrShadowRule     = attribute.Key("meshguard.shadow.rule")
)

// shadow asks the set's shadow policies about the request the enforcing
// ones decided (pd) and keeps a differing answer in d, on the evaluate
// span and in the metric. It never touches the decision itself. Callers
// check set.HasShadow first, so a set without shadow policies pays nothing.
func (e *Engine) shadow(set *policy.Set, in *policy.Input, pd *policy.Decision, d *Decision, span trace.Span) {
	sh, differs := set.Shadow(in, pd)
	if !differs {
		return
	}
	d.Shadow = &sh
	if span.IsRecording() {
		span.SetAttributes(AttrShadowDecision.String(string(sh.Effect)), AttrShadowReason.String(sh.Reason),
			AttrShadowPolicy.String(sh.Policy), AttrShadowRule.String(sh.Rule))
	}
	if e.shadowObs != nil {
		e.shadowObs.ShadowDisagreed(sh.Policy, string(pd.Effect), string(sh.Effect))
	}
}

// recordShadow is the audit record's shadow answer, nil when none differed.
func recordShadow(d *Decision) *audit.Shadow {
	sh := d.Shadow
	if sh == nil {
		return nil
	}
	return &audit.Shadow{Decision: string(sh.Effect), Reason: sh.Reason, Policy: sh.Policy, Rule: sh.Rule}
}
