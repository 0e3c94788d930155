package engine_test

import (
	"context"
	"errors"
	"testing"

	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/meshguard/meshguard/engine"
)

// TestAuditSpanStatusIsTheWrites: the meshguard.audit.write span has "an
// error status if the record could not be queued" (docs/tracing.md), and
// only then: a decision recorded leaves it Unset, without an error event,
// whatever the decision was.
func TestAuditSpanStatusIsTheWrites(t *testing.T) {
	m, e, rec := tracedMesh(t, sdktrace.AlwaysSample())
	for _, r := range []engine.Request{
		{Token: m.MailT, Method: "GET", Path: "/contacts"},    // allowed
		{Token: m.MailT, Method: "DELETE", Path: "/contacts"}, // denied
	} {
		check(t, e, r)
		if s := spanNamed(t, rec, engine.SpanAudit); s.Status().Code != otelcodes.Unset || len(s.Events()) != 0 {
			t.Fatalf("%s %s recorded: audit span status %v, events %v", r.Method, r.Path, s.Status(), s.Events())
		}
	}

	rec = tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f := m.F
	failing, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer,
		Agents: f.Agents, Policies: f.Policies, Limiter: f.Limiter, Recorder: failingRecorder{}, Tracer: tp.Tracer("test")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failing.Check(context.Background(), &engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"}); !errors.Is(err, engine.ErrInternal) {
		t.Fatalf("unrecorded decision: %v", err)
	}
	if s := spanNamed(t, rec, engine.SpanAudit); s.Status().Code != otelcodes.Error || len(s.Events()) != 1 {
		t.Fatalf("failed write: audit span status %v, events %v", s.Status(), s.Events())
	}
}
