package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/telemetry"
)

// buildTelemetry sets up tracing (from the OTEL_* variables) and the
// metrics registry, with the gauges read from the store.
func (p *parts) buildTelemetry(ctx context.Context, cfg *config.Config, o Options, log *slog.Logger) error {
	var err error
	if p.tracing, err = telemetry.NewTracing(ctx, telemetry.TracingConfig{Getenv: o.Getenv, ServiceVersion: o.Version,
		AlwaysSampleDenials: cfg.TraceDenials == "always"}); err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	log.Info("tracing", "exporter", p.tracing.Exporter)
	p.metrics = telemetry.NewMetrics()
	p.metrics.Gauge("meshguard_active_agents", "Agents registered and not revoked.", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := p.db.CountActiveAgents(ctx)
		if err != nil {
			log.Warn("metrics: counting agents failed", "error", err)
			return math.NaN()
		}
		return float64(n)
	})
	return nil
}
