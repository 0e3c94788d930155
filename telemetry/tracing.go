package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ErrConfig wraps every error in the OTEL_* variables; the message names
// the variable.
var ErrConfig = errors.New("invalid telemetry configuration")

// TracingConfig configures NewTracing.
type TracingConfig struct {
	// Getenv reads the OTEL_* variables (os.Getenv in serve). The OTLP
	// exporters themselves read their endpoint, headers, TLS and timeout
	// variables from the process environment, as every OTel SDK does.
	Getenv         func(string) string
	ServiceVersion string
	// SpanProcessor, if set, receives the spans instead of an exporter
	// (tests: the SDK's in-memory recorder).
	SpanProcessor sdktrace.SpanProcessor
	// AlwaysSampleDenials makes DenialTracer a tracer that samples every (up to MaxDenialSpansPerSecond)
	// span (TRACE_DENIALS=always): the engine records a denial the
	// sampler dropped with it.
	AlwaysSampleDenials bool
	// now is the denial budget's clock (tests); time.Now if nil.
	now func() time.Time
}

// Tracing is MeshGuard's tracer provider.
type Tracing struct {
	provider *sdktrace.TracerProvider
	// denials samples up to MaxDenialSpansPerSecond, exporting through provider's
	// processor; nil unless AlwaysSampleDenials and spans are exported.
	denials *sdktrace.TracerProvider
	// Exporter says where spans go: "none", "otlp/grpc" or "otlp/http".
	Exporter string
}

// NewTracing builds the tracer provider the OTEL_* variables describe.
// Spans are exported over OTLP when OTEL_TRACES_EXPORTER=otlp, or when it
// is unset and an OTLP endpoint is; the protocol is
// OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL (grpc or http/protobuf, the
// default). Without an exporter no span is recorded, but trace and span
// ids are still made: the audit trail and X-MeshGuard-Trace-Id need them.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	get := cfg.Getenv
	if get == nil {
		get = func(string) string { return "" }
	}
	exporter, err := exporterKind(get)
	if err != nil {
		return nil, err
	}
	if err := checkSampler(get); err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", "meshguard"), attribute.String("service.version", cfg.ServiceVersion)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	// The environment's resource (OTEL_SERVICE_NAME,
	// OTEL_RESOURCE_ATTRIBUTES) wins over the defaults.
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if res, err = resource.Merge(res, env); err != nil {
			return nil, fmt.Errorf("telemetry: resource: %w", err)
		}
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	var sp sdktrace.SpanProcessor
	switch {
	case cfg.SpanProcessor != nil:
		sp, exporter = cfg.SpanProcessor, "custom"
		opts = append(opts, sdktrace.WithSpanProcessor(sp))
	case exporter == "none":
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	default:
		exp, err := newExporter(ctx, exporter)
		if err != nil {
			return nil, err
		}
		// Batched and bounded (OTEL_BSP_*): spans are shed under
		// overload, never the audit trail, and never block a Check.
		sp = sdktrace.NewBatchSpanProcessor(exp)
		opts = append(opts, sdktrace.WithSpanProcessor(sp))
	}
	t := &Tracing{provider: sdktrace.NewTracerProvider(opts...), Exporter: exporter}
	if cfg.AlwaysSampleDenials && sp != nil {
		now := cfg.now
		if now == nil {
			now = time.Now
		}
		t.denials = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(sp),
			sdktrace.WithSampler(newDenialBudget(now)), sdktrace.WithIDGenerator(givenIDs{}))
	}
	return t, nil
}

func exporterKind(get func(string) string) (string, error) {
	if v := strings.TrimSpace(get("OTEL_SDK_DISABLED")); v != "" {
		disabled, err := strconv.ParseBool(v)
		if err != nil {
			return "", fmt.Errorf("%w: OTEL_SDK_DISABLED: %q: expected true or false", ErrConfig, v)
		}
		if disabled {
			return "none", nil
		}
	}
	endpoint := get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
	switch v := strings.TrimSpace(get("OTEL_TRACES_EXPORTER")); v {
	case "none":
		return "none", nil
	case "":
		if !endpoint {
			return "none", nil
		}
	case "otlp":
	default:
		return "", fmt.Errorf("%w: OTEL_TRACES_EXPORTER: %q: expected otlp or none", ErrConfig, v)
	}
	name, proto := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", strings.TrimSpace(get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if proto == "" {
		name, proto = "OTEL_EXPORTER_OTLP_PROTOCOL", strings.TrimSpace(get("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch proto {
	case "", "http/protobuf":
		return "otlp/http", nil
	case "grpc":
		return "otlp/grpc", nil
	default:
		return "", fmt.Errorf("%w: %s: %q: expected grpc or http/protobuf", ErrConfig, name, proto)
	}
}

// checkSampler refuses what the SDK would only log and ignore.
func checkSampler(get func(string) string) error {
	switch v := strings.TrimSpace(get("OTEL_TRACES_SAMPLER")); v {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
	case "traceidratio", "parentbased_traceidratio":
		if arg := strings.TrimSpace(get("OTEL_TRACES_SAMPLER_ARG")); arg != "" {
			if f, err := strconv.ParseFloat(arg, 64); err != nil || f < 0 || f > 1 {
				return fmt.Errorf("%w: OTEL_TRACES_SAMPLER_ARG: %q: expected a ratio from 0 to 1", ErrConfig, arg)
			}
		}
	default:
		return fmt.Errorf("%w: OTEL_TRACES_SAMPLER: %q: expected always_on, always_off, traceidratio or their parentbased_ forms", ErrConfig, v)
	}
	return nil
}

func newExporter(ctx context.Context, kind string) (sdktrace.SpanExporter, error) {
	var exp sdktrace.SpanExporter
	var err error
	if kind == "otlp/grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: %s exporter: %w", kind, err)
	}
	return exp, nil
}

// Tracer is the tracer the engine makes its spans with.
func (t *Tracing) Tracer() trace.Tracer {
	return t.provider.Tracer("github.com/meshguard/meshguard")
}

// CheckTracer is Tracer for the engine's decisions, or nil when no span
// is exported (Exporter "none"): the engine then starts no span at all
// and only makes the trace and span ids the audit trail needs, instead
// of paying the SDK to make ids for spans it never samples.
func (t *Tracing) CheckTracer() trace.Tracer {
	if t.Exporter == "none" {
		return nil
	}
	return t.Tracer()
}

// DenialTracer records denials the sampler dropped (AlwaysSampleDenials);
// nil when that is off or no span is exported.
func (t *Tracing) DenialTracer() trace.Tracer {
	if t.denials == nil {
		return nil
	}
	return t.denials.Tracer("github.com/meshguard/meshguard")
}

// Shutdown exports the spans still batched and stops, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.denials != nil {
		// Its processor is provider's: ending it flushes nothing twice.
		if err := t.denials.Shutdown(ctx); err != nil {
			return fmt.Errorf("telemetry: flushing spans: %w", err)
		}
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: flushing spans: %w", err)
	}
	return nil
}
