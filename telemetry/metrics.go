package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is MeshGuard's Prometheus registry with the metrics of docs/tracing.md.
// It is its own registry, not the process-wide default, so two servers in
// one test binary do not collide.
type Metrics struct {
	reg      *prometheus.Registry
	checks   *prometheus.CounterVec
	duration prometheus.Histogram
	audit    prometheus.Counter
	dropped  prometheus.Counter
	alerts   *prometheus.CounterVec
	shadow   *prometheus.CounterVec
}

// NewMetrics builds the registry, with the Go runtime and process
// collectors beside MeshGuard's own.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_policy_checks_total",
			Help: "Decisions made, by decision (allow, deny, error) and enforcement point.",
		}, []string{"decision", "source"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshguard_check_duration_seconds",
			Help: "Time MeshGuard took to decide a request, audit write included.",
			// From 25 µs: a cached decision takes a few µs.
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 14),
		}),
		audit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshguard_audit_entries_total",
			Help: "Audit records stored.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshguard_wasm_audit_dropped_total",
			Help: "Audit records wasm filters dropped because their buffer was full, as they reported them.",
		}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_alerts_sent_total",
			Help: "Alert deliveries, by provider and result (sent, failed: to be retried, dropped).",
		}, []string{"provider", "result"}),
		// Label values are bounded: policy names by the policy set, the
		// effects by allow, deny, approve.
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_shadow_disagreements_total",
			Help: "Decisions a shadow policy would have answered otherwise, by shadow policy, enforced and shadow decision.",
		}, []string{"policy", "enforced", "shadow"}),
	}
	m.reg.MustRegister(m.checks, m.duration, m.audit, m.dropped, m.alerts, m.shadow,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Decided counts one decision ("allow", "deny", or "error" for MeshGuard's
// own failure) from source.
func (m *Metrics) Decided(source, decision string, took time.Duration) {
	m.checks.WithLabelValues(decision, source).Inc()
	m.duration.Observe(took.Seconds())
}

// ShadowDisagreed counts one decision whose shadow answer (shadow) differs
// from the one enforced, put down to the shadow policy named.
func (m *Metrics) ShadowDisagreed(policy, enforced, shadow string) {
	m.shadow.WithLabelValues(policy, enforced, shadow).Inc()
}

// AuditWritten counts n records stored.
func (m *Metrics) AuditWritten(n int) { m.audit.Add(float64(n)) }

// FilterDropped counts n records a wasm filter reported dropping.
func (m *Metrics) FilterDropped(n uint64) { m.dropped.Add(float64(n)) }

// AlertResult counts one alert delivery attempt.
func (m *Metrics) AlertResult(provider, result string) {
	m.alerts.WithLabelValues(provider, result).Inc()
}

// Gauge registers a gauge whose value fn reads at every scrape (active
// agents, the audit queue's depth).
func (m *Metrics) Gauge(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// Counter registers a counter whose value fn reads at every scrape (dead
// letters); fn must never decrease.
func (m *Metrics) Counter(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
