package main

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/telemetry/jaegertest"
)

var updatePicture = flag.Bool("update", false, "rewrite the trace picture in docs/tracing.md from Jaeger (make trace-picture)")

// TestDemoTraceInJaeger runs the demo against a real Jaeger, as a user
// pointing `make demo` at one would, and reads the chain's trace back
// through Jaeger's API: one tree, each hop under the one that handed it
// the task (only the first call carries a traceparent; the delegation
// tokens carry the trace on), the denials made with the chain's tokens in
// it, marked Error. docs/tracing.md draws that tree; the test fails when
// the trace differs from the picture, and -update (make trace-picture)
// redraws it.
func TestDemoTraceInJaeger(t *testing.T) {
	j := jaegertest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+j.OTLPGRPCEndpoint())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_SERVICE_NAME", "meshguard-demo")
	var out strings.Builder
	if err := run(context.Background(), &out, options{policies: "../policies", anyPort: true}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Five decisions: three hops (with their policy, audit, delegation
	// and hand-off checks) and two denials under them.
	spans, err := j.WaitTrace(ctx, demoTrace, 21)
	if err != nil {
		t.Fatalf("jaeger: %v (log %s)", err, j.LogPath())
	}
	byID := map[string]jaegertest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	// The emailer's read hangs under the researcher's call, under the
	// orchestrator's: a tree three hops deep.
	depth := 0
	for _, s := range spans {
		if s.Tags["meshguard.agent_name"] == "emailer" && s.Tags["meshguard.decision"] == "allow" {
			for p, ok := s, true; ok; p, ok = byID[p.ParentSpanID] {
				if engine.IsCheckSpan(p.OperationName) {
					depth++
				}
			}
		}
	}
	if depth != 3 {
		t.Errorf("the emailer's read is %d checks deep, want 3", depth)
	}
	checkTracePicture(t, jaegertest.Tree(spans, traceLabel))
}

// The region of docs/tracing.md the picture fills.
const (
	tracePicturePath  = "../../docs/tracing.md"
	tracePictureStart = "<!-- trace picture: make trace-picture writes it from Jaeger's API -->\n```text\n"
	tracePictureEnd   = "```\n<!-- end of trace picture -->"
)

// checkTracePicture holds the trace Jaeger returned to the picture in
// docs/tracing.md, or rewrites the picture with -update.
func checkTracePicture(t *testing.T, got string) {
	t.Helper()
	doc, err := os.ReadFile(tracePicturePath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := strings.Cut(string(doc), tracePictureStart)
	want, after, ok2 := strings.Cut(rest, tracePictureEnd)
	if !ok || !ok2 {
		t.Fatalf("%s has no trace picture between its markers", tracePicturePath)
	}
	if *updatePicture {
		if err := os.WriteFile(tracePicturePath, []byte(before+tracePictureStart+got+tracePictureEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		t.Errorf("the trace in Jaeger is not the picture in %s (make trace-picture redraws it):\n%s", tracePicturePath, got)
	}
}

// traceLabel is a span's line in the picture: its name and what a person
// looks for, no ids or times.
func traceLabel(s jaegertest.Span) string {
	tag := func(k string) string { return s.Tags[k] }
	l := s.OperationName
	switch {
	case engine.IsCheckSpan(s.OperationName):
		l += "  " + tag("meshguard.agent_name") + ": " + strings.ToUpper(tag("meshguard.decision")) + " " + tag("meshguard.action") + " (" + tag("meshguard.reason") + ")"
	case tag("meshguard.decision") != "":
		l += "  " + tag("meshguard.decision") + " (" + tag("meshguard.reason") + ")"
	case tag("meshguard.reason") != "":
		l += "  (" + tag("meshguard.reason") + ")"
	}
	if tag("otel.status_code") == "ERROR" {
		l += "  [Error]"
	}
	return l
}
