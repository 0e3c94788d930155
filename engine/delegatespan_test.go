package engine_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/telemetry"
)

// TestDelegateSpanAndMetrics: a Delegate is traced and counted as
// docs/tracing.md says — a meshguard.delegate span (kind server, under the
// caller's span, with the decision's ids) holding the hand-off and the
// audit write, Error with a meshguard.denied event when refused — and
// counted in meshguard_policy_checks_total under source "delegation".
func TestDelegateSpanAndMetrics(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	metrics := telemetry.NewMetrics()
	f := m.F
	e, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer, Agents: f.Agents, Names: f.Store,
		Policies: f.Policies, Limiter: f.Limiter, Recorder: f.Audit, Tracer: tp.Tracer("test"), Observer: metrics})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		caller string
		effect string
		status int
		reason string
	}{
		{"minted", m.OrchT, "allow", 201, policy.ReasonRuleAllow},
		{"refused", m.MailT, "deny", 403, policy.ReasonDelegationNotPermitted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := engine.DelegateRequest{Caller: engine.Request{Token: tc.caller}, Delegate: "researcher", Actions: []string{"read:*"}}
			r.Caller.SetTraceparent("00-" + testTraceID + "-" + testParent + "-01")
			out := delegate(t, e, r)
			if out.Effect != tc.effect || out.Status != tc.status || out.Reason != tc.reason {
				t.Fatalf("%+v; want %s %d %s", out, tc.effect, tc.status, tc.reason)
			}
			s := spanNamed(t, rec, engine.SpanDelegate)
			if s.SpanKind() != trace.SpanKindServer || s.Parent().SpanID().String() != testParent || !s.Parent().IsRemote() ||
				s.SpanContext().TraceID().String() != out.TraceID || s.SpanContext().SpanID().String() != out.SpanID {
				t.Fatalf("span %s kind %v parent %v ids %s/%s; want a server span under the caller's with the decision's ids %s/%s",
					s.Name(), s.SpanKind(), s.Parent(), s.SpanContext().TraceID(), s.SpanContext().SpanID(), out.TraceID, out.SpanID)
			}
			a := attrs(s)
			for k, v := range map[string]string{
				"meshguard.source": "delegation", "meshguard.action": engine.DelegateAction + "researcher", "meshguard.decision": tc.effect,
				"meshguard.status": strconv.Itoa(tc.status), "meshguard.reason": tc.reason, "meshguard.decision_id": out.ID, "meshguard.agent_id": out.AgentID,
			} {
				if a[k] != v {
					t.Errorf("delegate span %s = %q, want %q", k, a[k], v)
				}
			}
			if denied := tc.effect == "deny"; denied != (s.Status().Code == otelcodes.Error) || denied != (len(s.Events()) == 1 && s.Events()[0].Name == engine.EventDenied) {
				t.Errorf("%s: span status %v, events %v", tc.effect, s.Status(), s.Events())
			}
			for _, name := range []string{engine.SpanHandOff, engine.SpanAudit} {
				if c := spanNamed(t, rec, name); c.Parent().SpanID() != s.SpanContext().SpanID() {
					t.Errorf("%s is not under the delegate span", name)
				}
			}
		})
	}
	for _, s := range rec.Ended() {
		if engine.IsCheckSpan(s.Name()) {
			t.Errorf("a Delegate made a check span %q", s.Name())
		}
	}

	rr := httptest.NewRecorder()
	metrics.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`meshguard_policy_checks_total{decision="allow",source="delegation"} 1`,
		`meshguard_policy_checks_total{decision="deny",source="delegation"} 1`,
	} {
		if !strings.Contains(rr.Body.String(), want) {
			t.Errorf("no %q in /metrics", want)
		}
	}
}
