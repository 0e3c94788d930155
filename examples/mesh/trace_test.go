package main

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/telemetry/jaegertest"
)

// TestMeshTraceInJaeger runs the mesh with MeshGuard exporting to a real
// Jaeger, as `OTEL_EXPORTER_OTLP_ENDPOINT=… make mesh` does, and reads the
// chain back through Jaeger's API: the decisions of all three agents, in
// three languages, are one trace. The gateway forwards each hop with its
// decision's span as the parent, so what the next agent asks hangs under
// that hop; an agent that makes a span id of its own (the TypeScript SDK
// does) hangs its checks under that unexported span instead.
func TestMeshTraceInJaeger(t *testing.T) {
	for _, tool := range []string{"python3", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the mesh needs %s on PATH: %v", tool, err)
		}
	}
	j := jaegertest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+j.OTLPGRPCEndpoint())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_SERVICE_NAME", "meshguard-mesh")
	var buf strings.Builder
	got, err := run(context.Background(), options{out: &buf, policies: "policies", dir: "."})
	if err != nil {
		t.Fatalf("mesh: %v\n%s", err, buf.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Five decisions (two hops at the gateway, each handing the task to an
	// agent, and three checks), each with its audit write and its policy,
	// delegation or hand-off spans: 21 spans.
	spans, err := j.WaitTrace(ctx, got.chain.TraceID, 21)
	if err != nil {
		t.Fatalf("jaeger: %v (log %s)", err, j.LogPath())
	}
	type decision struct{ op, agent, action, reason string }
	var decisions []decision
	for _, s := range spans {
		if engine.IsCheckSpan(s.OperationName) {
			decisions = append(decisions, decision{s.OperationName, s.Tags["meshguard.agent_name"], s.Tags["meshguard.action"], s.Tags["meshguard.reason"]})
		}
	}
	slices.SortFunc(decisions, func(a, b decision) int { return strings.Compare(a.agent+a.action, b.agent+b.action) })
	want := []decision{
		{"meshguard.check", "emailer", "write:email", policy.ReasonRuleAllow},
		{engine.SpanInvokeAgent + " researcher", "orchestrator", "write:tasks/research", policy.ReasonRuleAllow},
		{"meshguard.check", "researcher", "read:papers", policy.ReasonRuleAllow},
		{engine.SpanInvokeAgent + " emailer", "researcher", "write:email", policy.ReasonRuleAllow},
		{"meshguard.check", "researcher", "write:notes/drafts", policy.ReasonDelegationCeiling},
	}
	if !slices.Equal(decisions, want) {
		t.Errorf("the decisions in trace %s:\n got %+v\nwant %+v\n%s", got.chain.TraceID, decisions, want,
			jaegertest.Tree(spans, func(s jaegertest.Span) string { return s.OperationName + " " + s.Tags["meshguard.agent_name"] }))
	}
}
