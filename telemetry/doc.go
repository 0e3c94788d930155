// Package telemetry sets up what MeshGuard reports about itself: its
// OpenTelemetry tracing, configured by the standard OTEL_* variables and
// exported over OTLP (HTTP or gRPC), and its Prometheus metrics (docs/tracing.md).
//
// The engine makes the spans and the adapters feed the metrics; this
// package only builds the providers and the registry, so no other package
// depends on an exporter. Its subpackage jaegertest runs a real Jaeger for
// end-to-end tests.
package telemetry
