package engine_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
)

// BenchmarkCheck measures one decision through the whole pipeline with a
// cached token: direct, with a delegation chain of two, and a denial.
func BenchmarkCheck(b *testing.B) {
	m := enginetest.NewMesh(b, enginetest.Options{})
	f := m.F
	ctx := context.Background()
	e := engineWith(b, f, nil, nil)
	d, err := e.Check(ctx, &engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
	if err != nil || !d.Allowed {
		b.Fatal(d, err)
	}
	d, err = e.Check(ctx, &engine.Request{Token: m.ResT, Delegation: d.Delegation, Method: "GET", Host: "emailer.mesh", Path: "/contacts"})
	if err != nil || !d.Allowed {
		b.Fatal(d, err)
	}
	toMail := d.Delegation
	for _, tc := range []struct {
		name  string
		req   engine.Request
		allow bool
	}{
		{"direct", engine.Request{Token: m.MailT, Method: "POST", Host: "smtp.internal", Path: "/email?to=a@example.com"}, true},
		// The headers Envoy hands ext_authz for a typical request: the
		// engine looks some up (method overrides, the keys policies read).
		{"direct-with-headers", engine.Request{Token: m.MailT, Method: "POST", Host: "smtp.internal", Path: "/email?to=a@example.com", Headers: edge.MapHeaders{
			":authority": "smtp.internal", ":method": "POST", ":path": "/email?to=a@example.com", ":scheme": "http",
			"user-agent": "research-agent/1.4 (+python-httpx)", "accept": "application/json", "content-type": "application/json",
			"x-forwarded-proto": "http", "x-request-id": "6f1b6c1e-6e63-4a53-9a8e-0b1a2f4c9d11", "x-envoy-attempt-count": "1",
			"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}}, true},
		{"chain-of-two", engine.Request{Token: m.MailT, Delegation: toMail, Method: "GET", Host: "crm.internal", Path: "/contacts"}, true},
		{"denied", engine.Request{Token: m.MailT, Method: "DELETE", Host: "crm.internal", Path: "/contacts/1"}, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := tc.req
				d, err := e.Check(ctx, &r)
				if err != nil || d.Allowed != tc.allow {
					b.Fatal(d, err)
				}
			}
		})
	}
}

// BenchmarkCheckPrincipal is BenchmarkCheck's direct case for a caller
// known by its mesh identity: by its peer principal alone, and with its
// token and principal (which must agree); "token" is the same request with
// the token alone, measured in the same run for the ratio.
func BenchmarkCheckPrincipal(b *testing.B) {
	m := enginetest.NewMesh(b, enginetest.Options{})
	const mail = "spiffe://cluster.local/ns/agents/sa/emailer"
	m.F.Bind(b, m.Mail.ID, mail)
	e := engineWith(b, m.F, nil, nil)
	for _, tc := range []struct {
		name string
		req  engine.Request
	}{
		{"token", engine.Request{Token: m.MailT, Method: "POST", Host: "smtp.internal", Path: "/email?to=a@example.com"}},
		{"principal", engine.Request{Principal: mail, Method: "POST", Host: "smtp.internal", Path: "/email?to=a@example.com"}},
		{"token-and-principal", engine.Request{Token: m.MailT, Principal: mail, Method: "POST", Host: "smtp.internal", Path: "/email?to=a@example.com"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := tc.req
				d, err := e.Check(context.Background(), &r)
				if err != nil || !d.Allowed {
					b.Fatal(d, err)
				}
			}
		})
	}
}

// BenchmarkCheckAudited is BenchmarkCheck's direct case with every
// decision recorded through the batching writer into SQLite, as serve
// runs it, from parallel callers; "off" is the same without a recorder.
//
// In process a Check costs a few microseconds, less than SQLite takes to
// store its record, so the callers outrun the store. With serve's queue
// (65,536 records) the queue would grow until its oldest record passed
// the lag bound and the writer refused decisions (fail closed): that
// measures nothing but the machine's speed. Here the queue holds two
// batches, so a full queue holds the callers back (the writer's
// backpressure), and the lag bound is a minute, so a machine busy with
// other work (one batch's commit has taken over half a second) slows the
// benchmark instead of failing it. "on" is then the cost of an audited
// Check with every record stored, on cores the callers and SQLite share,
// as under serve at saturation; "sync" with AUDIT_FLUSH_MS=0, each
// decision's record committed before it returns. BenchmarkCheckAuditedCall/plain measures
// the decision's own share, with a store that drops the records.
func BenchmarkCheckAudited(b *testing.B) {
	m := enginetest.NewMesh(b, enginetest.Options{})
	w, err := audit.NewWriter(context.Background(), m.F.Store, audit.WriterConfig{FlushInterval: 50 * time.Millisecond,
		QueueSize: 2 * audit.DefaultMaxBatch, MaxLag: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = w.Close(context.Background()) })
	// AUDIT_FLUSH_MS=0 on a store of its own (a second writer on one
	// chain would find its head moved).
	ms := enginetest.NewMesh(b, enginetest.Options{})
	sync, err := audit.NewWriter(context.Background(), ms.F.Store, audit.WriterConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sync.Close(context.Background()) })
	for _, tc := range []struct {
		name     string
		m        *enginetest.Mesh
		recorder engine.Recorder
	}{{"off", m, nil}, {"on", m, w}, {"sync", ms, sync}} {
		e := engineWith(b, tc.m.F, tc.recorder, nil)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := engine.Request{Token: tc.m.MailT, Method: "POST", Host: "smtp.internal", Path: "/email?to=a@example.com",
						SourceAddress: "10.0.0.7"}
					if d, err := e.Check(context.Background(), &r); err != nil || !d.Allowed {
						b.Fatal(d, err)
					}
				}
			})
		})
	}
}

// engineWith is the fixture's engine with another recorder and tracer (the
// fixture's records synchronously, which would measure SQLite's commit).
func engineWith(b *testing.B, f *enginetest.Fixture, rec engine.Recorder, tracer trace.Tracer) *engine.Engine {
	b.Helper()
	e, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer,
		Agents: f.Agents, Policies: f.Policies, Limiter: f.Limiter, Recorder: rec, Tracer: tracer})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkCheckTraced is BenchmarkCheck's direct case with the tracer
// serve builds: no exporter (spans not recorded, ids still made), and
// every span recorded into a processor that drops them.
func BenchmarkCheckTraced(b *testing.B) {
	m := enginetest.NewMesh(b, enginetest.Options{})
	never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	always := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(dropSpans{}))
	b.Cleanup(func() { _ = never.Shutdown(context.Background()); _ = always.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name   string
		tracer trace.Tracer
	}{{"no-tracer", nil}, {"unsampled", never.Tracer("b")}, {"recorded", always.Tracer("b")}} {
		e := engineWith(b, m.F, nil, tc.tracer)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := engine.Request{Token: m.MailT, Method: "POST", Host: "smtp.internal", Path: "/email?to=a@example.com",
					TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", ParentSpanID: "00f067aa0ba902b7", TraceSampled: true}
				if d, err := e.Check(context.Background(), &r); err != nil || !d.Allowed {
					b.Fatal(d, err)
				}
			}
		})
	}
}

// dropSpans is a span processor that keeps nothing.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }
