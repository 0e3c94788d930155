package jaegertest

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseTrace runs without a Jaeger binary: the fixture is a response of
// Jaeger v1.76.0's /api/traces/{id}, edited to cover the cases that a live
// test does not reliably produce (large int64, JSON escapes, a span link, a
// trace ID with zero high bits).
func TestParseTrace(t *testing.T) {
	body, err := os.ReadFile("testdata/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseTrace(body)
	if err != nil {
		t.Fatalf("parseTrace: %v", err)
	}
	const id = "64693c44043ed756d054b439d71c8b86"
	want := []Span{
		{
			TraceID: id, SpanID: "451eef9879f4ae6d", ParentSpanID: "7225005d013392a3",
			OperationName: "child", ServiceName: "svc",
			Tags:        map[string]string{"otel.scope.name": "x", "span.kind": "internal", "path": "a/b é"},
			ProcessTags: map[string]string{"telemetry.sdk.language": "go"},
		},
		{
			// A FOLLOWS_FROM reference (an OTLP link) is not a parent.
			TraceID: id, SpanID: "7225005d013392a3", ParentSpanID: "",
			OperationName: "parent", ServiceName: "svc",
			Tags: map[string]string{
				"n": "9007199254740993", "ok": "true", "f": "0.25",
				"otel.scope.name": "x", "span.kind": "internal",
			},
			ProcessTags: map[string]string{"telemetry.sdk.language": "go"},
		},
		{
			TraceID: "00000000000000006d054b439d71c8b8", SpanID: "0000000000000001",
			OperationName: "short", ServiceName: "other",
			Tags: map[string]string{}, ProcessTags: map[string]string{},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseTrace mismatch (-want +got):\n%s", diff)
	}
}

func TestParseTraceError(t *testing.T) {
	_, err := parseTrace([]byte(`{"data":null,"errors":[{"code":400,"msg":"malformed trace id"}]}`))
	if err == nil {
		t.Fatal("parseTrace accepted an error response")
	}
}
