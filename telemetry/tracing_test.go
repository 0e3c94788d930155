package telemetry

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestTracingConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string // exporter, or the variable an error must name
		wantErr bool
	}{
		{"nothing set", nil, "none", false},
		{"endpoint implies otlp over http", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp/http", false},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp/http", false},
		{"grpc", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp/grpc", false},
		{"traces protocol wins", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "otlp/http", false},
		{"none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, "none", false},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, "none", false},
		{"ratio sampler", map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, "none", false},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER", true},
		{"json protocol", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL", true},
		{"bad traces protocol", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", true},
		{"bad disabled", map[string]string{"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED", true},
		{"unknown sampler", map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER", true},
		{"ratio out of range", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := NewTracing(context.Background(), TracingConfig{Getenv: func(k string) string { return tc.env[k] }})
			if tc.wantErr {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want+":") {
					t.Fatalf("got %v, want an error naming %s", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
			if tr.Exporter != tc.want {
				t.Fatalf("exporter %q, want %q", tr.Exporter, tc.want)
			}
			// Without an exporter the engine gets no tracer, and starts
			// no span; with one, it gets the tracer that exports.
			if got := tr.CheckTracer(); (got == nil) != (tc.want == "none") {
				t.Fatalf("exporter %q: CheckTracer %v", tr.Exporter, got)
			}
		})
	}
}

// TestNoExporterStillMakesIDs: without an exporter nothing records, but
// every span has its own ids (the audit trail and X-MeshGuard-Trace-Id
// need them).
func TestNoExporterStillMakesIDs(t *testing.T) {
	tr, err := NewTracing(context.Background(), TracingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, s := tr.Tracer().Start(context.Background(), "x")
	defer s.End()
	if s.IsRecording() || !s.SpanContext().IsValid() {
		t.Fatalf("recording %v, valid %v", s.IsRecording(), s.SpanContext().IsValid())
	}
}

func TestResourceNamesTheService(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr, err := NewTracing(context.Background(), TracingConfig{ServiceVersion: "v1.2.3", SpanProcessor: rec})
	if err != nil {
		t.Fatal(err)
	}
	if tr.CheckTracer() == nil {
		t.Fatal("a span processor, and no tracer for the engine's checks")
	}
	_, s := tr.CheckTracer().Start(context.Background(), "x")
	s.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	attrs := map[string]string{}
	for _, kv := range rec.Ended()[0].Resource().Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["service.name"] != "meshguard" || attrs["service.version"] != "v1.2.3" {
		t.Fatalf("resource %v", attrs)
	}
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.Decided("ext_authz-grpc", "allow", 40*time.Microsecond)
	m.Decided("gateway", "deny", time.Millisecond)
	m.AuditWritten(2)
	m.Gauge("meshguard_active_agents", "Agents.", func() float64 { return 3 })
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	body := rr.Body.String()
	for _, want := range []string{
		`meshguard_policy_checks_total{decision="allow",source="ext_authz-grpc"} 1`,
		`meshguard_policy_checks_total{decision="deny",source="gateway"} 1`,
		`meshguard_check_duration_seconds_count 2`,
		`meshguard_audit_entries_total 2`,
		`meshguard_active_agents 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in:\n%s", want, body)
		}
	}
}
