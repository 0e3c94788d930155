package telemetry

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestDenialSpansAreBounded: TRACE_DENIALS=always exports the denials the
// sampler dropped, but a caller denied in a loop must not set the rate of
// spans sent to the backend: at most MaxDenialSpansPerSecond, as a burst
// and then as the clock moves on.
func TestDenialSpansAreBounded(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	clock := time.Unix(1_700_000_000, 0)
	rec := tracetest.NewSpanRecorder()
	tr, err := NewTracing(context.Background(), TracingConfig{SpanProcessor: rec, AlwaysSampleDenials: true, now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	deny := func(n int) {
		for i := range n {
			tid, sid := trace.TraceID{1, byte(i >> 8), byte(i)}, trace.SpanID{1, byte(i >> 8), byte(i)}
			_, s := tr.DenialTracer().Start(WithSpanIDs(context.Background(), tid, sid), "meshguard.check")
			s.End()
		}
	}
	for _, step := range []struct {
		name    string
		advance time.Duration
		denials int
		want    int // spans recorded in all
	}{
		{"a burst is cut at the bound", 0, 10 * MaxDenialSpansPerSecond, MaxDenialSpansPerSecond},
		{"no time, no more", 0, 10, MaxDenialSpansPerSecond},
		{"half a second later, half the bound", 500 * time.Millisecond, MaxDenialSpansPerSecond, MaxDenialSpansPerSecond * 3 / 2},
		{"a long pause refills no more than the burst", time.Hour, 10 * MaxDenialSpansPerSecond, MaxDenialSpansPerSecond * 5 / 2},
	} {
		clock = clock.Add(step.advance)
		deny(step.denials)
		if got := len(rec.Ended()); got != step.want {
			t.Fatalf("%s: %d denial spans recorded, want %d", step.name, got, step.want)
		}
	}
}
