package telemetry

import (
	"context"
	"crypto/rand"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Denials the sampler dropped are still worth a look: with
// TracingConfig.AlwaysSampleDenials the engine records them with
// DenialTracer, whose provider samples everything and exports through the
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
