package telemetry

import (
	"context"
	"crypto/rand"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Denials the sampler dropped are still worth a look: with
// TracingConfig.AlwaysSampleDenials the engine records them with
// DenialTracer, whose provider samples them (up to MaxDenialSpansPerSecond) and exports through the
// same processor. Its spans take the ids the decision already has — the
// ones its audit record and X-MeshGuard-Trace-Id carry — through
// WithSpanIDs, so the span found in a backend is the record's.

type spanIDsKey struct{}

type spanIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

// WithSpanIDs asks the denial tracer to give the next span it starts in
// ctx these ids (the trace id only when the span has no parent).
func WithSpanIDs(ctx context.Context, tid trace.TraceID, sid trace.SpanID) context.Context {
	return context.WithValue(ctx, spanIDsKey{}, spanIDs{tid, sid})
}

// givenIDs is an IDGenerator that hands out the ids WithSpanIDs put in the
// context, and random ones otherwise.
type givenIDs struct{}

var _ sdktrace.IDGenerator = givenIDs{}

func (givenIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if ids, ok := ctx.Value(spanIDsKey{}).(spanIDs); ok && ids.trace.IsValid() && ids.span.IsValid() {
		return ids.trace, ids.span
	}
	var tid trace.TraceID
	_, _ = rand.Read(tid[:]) // never fails (Go 1.24+)
	return tid, givenIDs{}.NewSpanID(ctx, tid)
}

func (givenIDs) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if ids, ok := ctx.Value(spanIDsKey{}).(spanIDs); ok && ids.span.IsValid() {
		return ids.span
	}
	var sid trace.SpanID
	_, _ = rand.Read(sid[:])
	return sid
}

// MaxDenialSpansPerSecond bounds the denials TRACE_DENIALS=always exports
// beyond the sampler's (a burst of as many): a caller denied in a loop —
// unauthenticated, say — would otherwise set the rate of spans sent to the
// tracing backend. Past it a denial is in the audit trail and the metrics
// only.
const MaxDenialSpansPerSecond = 100

// denialBudget is a token bucket sampler: it samples while it has tokens.
type denialBudget struct {
	now    func() time.Time
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newDenialBudget(now func() time.Time) *denialBudget {
	return &denialBudget{now: now, tokens: MaxDenialSpansPerSecond, last: now()}
}

func (b *denialBudget) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	ts := trace.SpanContextFromContext(p.ParentContext).TraceState()
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(MaxDenialSpansPerSecond, b.tokens+el.Seconds()*MaxDenialSpansPerSecond)
	}
	b.last = now
	if b.tokens < 1 {
		return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: ts}
	}
	b.tokens--
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: ts}
}

func (b *denialBudget) Description() string { return "DenialBudget" }
