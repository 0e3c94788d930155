package engine_test

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/meshguard/meshguard/engine"
)

// TestCheckSpanNamesTheChainOnlyForADelegatedCall: the check span carries
// meshguard.delegation.chain_names, the chain as agent names root first,
// "for a delegated call" (docs/tracing.md), and a call an agent makes on
// its own account has no such attribute.
func TestCheckSpanNamesTheChainOnlyForADelegatedCall(t *testing.T) {
	m, e, rec := tracedMesh(t, sdktrace.AlwaysSample())
	own := check(t, e, engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
	if v, ok := attrs(spanNamed(t, rec, engine.SpanCheck))[string(engine.AttrChainNames)]; ok {
		t.Fatalf("own account: chain_names %s", v)
	}
	check(t, e, engine.Request{Token: m.ResT, Delegation: own.Delegation, Method: "GET", Path: "/papers"})
	if v := attrs(spanNamed(t, rec, engine.SpanCheck))[string(engine.AttrChainNames)]; v != `["orchestrator","researcher"]` {
		t.Fatalf("delegated call: chain_names %q", v)
	}
}
