package jaegertest_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/telemetry/jaegertest"
)

// TestOTLPRoundTrip sends one trace through each OTLP transport the SDK
// offers and checks that Jaeger gives back the same tree and attributes: this
// is the plumbing every tracing e2e test relies on. One Jaeger serves all
// subtests, as it would serve a package's tests.
func TestOTLPRoundTrip(t *testing.T) {
	j := jaegertest.Start(t)

	// The contract WaitTrace relies on: a trace Jaeger has not stored is no
	// spans and no error, not a failure.
	t.Run("unknown", func(t *testing.T) {
		spans, err := j.Trace(t.Context(), "0123456789abcdef0123456789abcdef")
		if err != nil || len(spans) != 0 {
			t.Fatalf("Trace(unknown) = %v, %v; want no spans, no error", spans, err)
		}
	})

	exporters := []struct {
		name string
		new  func(ctx context.Context) (sdktrace.SpanExporter, error)
	}{
		{"grpc", func(ctx context.Context) (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx,
				otlptracegrpc.WithEndpoint(j.OTLPGRPCEndpoint()),
				otlptracegrpc.WithInsecure())
		}},
		{"http", func(ctx context.Context) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx,
				otlptracehttp.WithEndpointURL(j.OTLPHTTPEndpoint()+"/v1/traces"))
		}},
	}
	for _, e := range exporters {
		t.Run(e.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			exp, err := e.new(ctx)
			if err != nil {
				t.Fatalf("creating exporter: %v", err)
			}
			service := "jaegertest-" + e.name
			// The syncer exports each span as it ends, so after Shutdown
			// everything has been handed to Jaeger and only its (async)
			// ingestion remains to wait for.
			tp := sdktrace.NewTracerProvider(
				sdktrace.WithSyncer(exp),
				sdktrace.WithResource(resource.NewSchemaless(
					attribute.String("service.name", service),
					attribute.String("service.version", "test"),
				)),
			)
			tracer := tp.Tracer("meshguard/jaegertest")

			pctx, parent := tracer.Start(ctx, "authorize",
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("mg.agent", "researcher")))
			_, c1 := tracer.Start(pctx, "policy.evaluate",
				trace.WithAttributes(attribute.Bool("mg.allowed", false), attribute.Int("mg.rules", 7)))
			c1.End()
			_, c2 := tracer.Start(pctx, "audit.write",
				trace.WithAttributes(attribute.String("mg.decision", "deny"), attribute.Float64("mg.score", 0.25)))
			c2.End()
			parent.End()
			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("flushing spans: %v", err)
			}

			traceID := parent.SpanContext().TraceID().String()
			spans, err := j.WaitTrace(ctx, traceID, 3)
			if err != nil {
				t.Fatalf("%v; got %+v", err, spans)
			}
			if len(spans) != 3 {
				t.Fatalf("got %d spans, want 3: %+v", len(spans), spans)
			}
			byName := map[string]jaegertest.Span{}
			for _, s := range spans {
				byName[s.OperationName] = s
				if s.TraceID != traceID {
					t.Errorf("span %s: trace ID %s, want %s", s.OperationName, s.TraceID, traceID)
				}
				if s.ServiceName != service {
					t.Errorf("span %s: service %q, want %q", s.OperationName, s.ServiceName, service)
				}
				if got := s.ProcessTags["service.version"]; got != "test" {
					t.Errorf("span %s: process tag service.version = %q, want %q", s.OperationName, got, "test")
				}
			}

			want := []struct {
				op, id, parent string
				tags           map[string]string
			}{
				{"authorize", parent.SpanContext().SpanID().String(), "",
					map[string]string{"mg.agent": "researcher", "span.kind": "server"}},
				{"policy.evaluate", c1.SpanContext().SpanID().String(), parent.SpanContext().SpanID().String(),
					map[string]string{"mg.allowed": "false", "mg.rules": "7"}},
				{"audit.write", c2.SpanContext().SpanID().String(), parent.SpanContext().SpanID().String(),
					map[string]string{"mg.decision": "deny", "mg.score": "0.25"}},
			}
			for _, w := range want {
				s, ok := byName[w.op]
				if !ok {
					t.Errorf("no span %q in %+v", w.op, spans)
					continue
				}
				if s.SpanID != w.id {
					t.Errorf("%s: span ID %s, want %s", w.op, s.SpanID, w.id)
				}
				if s.ParentSpanID != w.parent {
					t.Errorf("%s: parent %q, want %q", w.op, s.ParentSpanID, w.parent)
				}
				for k, v := range w.tags {
					if got, ok := s.Tags[k]; !ok || got != v {
						t.Errorf("%s: tag %s = %q (present %v), want %q; all tags %v", w.op, k, got, ok, v, s.Tags)
					}
				}
			}
		})
	}
}
