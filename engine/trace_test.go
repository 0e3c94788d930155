package engine_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/telemetry"
)

const (
	testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	testParent  = "00f067aa0ba902b7"
)

// tracedMesh is the delegation mesh with an SDK tracer recording into
// memory, and the audit writer of the fixture.
func tracedMesh(t *testing.T, sampler sdktrace.Sampler) (*mesh, *engine.Engine, *tracetest.SpanRecorder) {
	t.Helper()
	m := newMesh(t, enginetest.Options{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f := m.F
	e, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer,
		Agents: f.Agents, Policies: f.Policies, Limiter: f.Limiter, Recorder: f.Audit, Tracer: tp.Tracer("test")})
	if err != nil {
		t.Fatal(err)
	}
	return m, e, rec
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

// TestSpansOfAChain: a decision on a delegated call, under an incoming
// traceparent, makes meshguard.check (child of the caller's span) with the
// delegation check, the policy evaluation and the audit write under it;
// the decision and its audit record carry the check span's ids.
func TestSpansOfAChain(t *testing.T) {
	m, e, rec := tracedMesh(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	ctx := context.Background()
	first := check(t, e, engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
	var r engine.Request
	r.SetTraceparent("00-" + testTraceID + "-" + testParent + "-01")
	r.Token, r.Delegation, r.Method, r.Host, r.Path = m.ResT, first.Delegation, "GET", "emailer.mesh", "/contacts"
	d, err := e.Check(ctx, &r)
	if err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	spans := rec.Ended()
	var root sdktrace.ReadOnlySpan
	children := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanContext().TraceID().String() != testTraceID {
			continue // the first decision's own trace
		}
		if engine.IsCheckSpan(s.Name()) {
			root = s
		} else {
			children[s.Name()] = s
		}
	}
	if root == nil || root.Parent().SpanID().String() != testParent || !root.Parent().IsRemote() {
		t.Fatalf("check span %v, want a child of the caller's span", root)
	}
	if d.TraceID != testTraceID || d.SpanID != root.SpanContext().SpanID().String() {
		t.Fatalf("decision ids %s/%s, span %s", d.TraceID, d.SpanID, root.SpanContext().SpanID())
	}
	a := attrs(root)
	want := map[string]string{
		"meshguard.agent_id": m.Res.ID, "meshguard.action": "read:contacts", "meshguard.decision": "allow",
		"meshguard.policy_name": "researchers", "meshguard.reason": "rule_allow", "meshguard.delegation.depth": "1",
		"meshguard.delegation.chain": `["` + m.Orch.ID + `","` + m.Res.ID + `"]`, "meshguard.decision_id": d.ID,
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("check span %s = %q, want %q", k, a[k], v)
		}
	}
	for _, name := range []string{engine.SpanDelegation, engine.SpanEvaluate, engine.SpanAudit} {
		c, ok := children[name]
		if !ok || c.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Fatalf("no %s under the check span: %v", name, slices.Collect(maps.Keys(children)))
		}
	}
	if got := attrs(children[engine.SpanDelegation])["meshguard.delegation.depth"]; got != "1" {
		t.Errorf("delegation span depth %q", got)
	}
	// The audit record joins the span.
	var last audit.Record
	if err := m.F.Store.ScanAudit(ctx, func(r audit.Record) error { last = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if last.TraceID != testTraceID || last.SpanID != d.SpanID {
		t.Fatalf("audit record trace %s span %s, want %s %s", last.TraceID, last.SpanID, testTraceID, d.SpanID)
	}
}

// TestTraceIDs: without a traceparent the check span starts a trace and
// its id is the decision's; an unsampled parent records nothing but still
// gets its own span id; with no tracer, ids are made anyway.
func TestTraceIDs(t *testing.T) {
	m, e, rec := tracedMesh(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	d := check(t, e, engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"})
	spans := rec.Ended()
	i := slices.IndexFunc(spans, func(s sdktrace.ReadOnlySpan) bool { return engine.IsCheckSpan(s.Name()) })
	if i < 0 || d.TraceID != spans[i].SpanContext().TraceID().String() || spans[i].Parent().IsValid() {
		t.Fatalf("new trace: decision %s, spans %v", d.TraceID, spans)
	}
	n := len(rec.Ended())
	var r engine.Request
	r.SetTraceparent("00-" + testTraceID + "-" + testParent + "-00")
	r.Token, r.Method, r.Path = m.MailT, "GET", "/contacts"
	d = check(t, e, r)
	if len(rec.Ended()) != n || d.TraceID != testTraceID || len(d.SpanID) != 16 || d.SpanID == testParent {
		t.Fatalf("unsampled parent: %d spans recorded, ids %s/%s", len(rec.Ended())-n, d.TraceID, d.SpanID)
	}
	noTracer := check(t, m.F.Engine, r)
	if noTracer.TraceID != testTraceID || len(noTracer.SpanID) != 16 || noTracer.SpanID == testParent {
		t.Fatalf("no tracer: ids %s/%s", noTracer.TraceID, noTracer.SpanID)
	}
}

// spanNamed returns the last recorded span of that name.
func spanNamed(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := rec.Ended()
	for i := len(spans) - 1; i >= 0; i-- {
		if spans[i].Name() == name || name == engine.SpanCheck && engine.IsCheckSpan(spans[i].Name()) {
			return spans[i]
		}
	}
	t.Fatalf("no %s span in %d", name, len(spans))
	return nil
}

// TestDenialsStandOut: a denied decision's check span has status Error,
// described by its reason, and a meshguard.denied event; an allowed one
// stays Unset. The span names the caller, the target agent (GenAI's
// gen_ai.agent.*), the host and the path — never the query.
func TestDenialsStandOut(t *testing.T) {
	m, e, rec := tracedMesh(t, sdktrace.AlwaysSample())
	d := check(t, e, engine.Request{Token: m.MailT, Method: "DELETE", Host: "crm.internal", Path: "/contacts/1?api_key=s3cret"})
	if d.Allowed {
		t.Fatalf("%+v", d)
	}
	s := spanNamed(t, rec, engine.SpanCheck)
	a := attrs(s)
	if s.Status().Code != otelcodes.Error || s.Status().Description != d.Reason || len(s.Events()) != 1 || s.Events()[0].Name != engine.EventDenied {
		t.Fatalf("denied span: status %v, events %v", s.Status(), s.Events())
	}
	if a["meshguard.agent_name"] != "emailer" || a["server.address"] != "crm.internal" || a["url.path"] != "/contacts/1" {
		t.Fatalf("attributes %v", a)
	}
	for _, v := range a {
		if strings.Contains(v, "s3cret") {
			t.Fatalf("the query reached the span: %v", a)
		}
	}

	d = check(t, e, engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
	s = spanNamed(t, rec, engine.SpanCheck)
	if !d.Allowed || s.Status().Code != otelcodes.Unset || len(s.Events()) != 0 {
		t.Fatalf("allowed span: status %v, events %v", s.Status(), s.Events())
	}
	if a := attrs(s); s.Name() != "invoke_agent researcher" || a["gen_ai.agent.name"] != "researcher" || a["gen_ai.agent.id"] != m.Res.ID || a["gen_ai.operation.name"] != "invoke_agent" {
		t.Fatalf("the target agent is not named: %v", a)
	}
	if h := spanNamed(t, rec, engine.SpanHandOff); h.Status().Code != otelcodes.Unset || attrs(h)["meshguard.decision"] != "allow" {
		t.Fatalf("hand-off span %v %v", h.Status(), attrs(h))
	}
}

// TestDelegationSpansTellTheTruth: the delegation span carries the reason
// the chain was denied for (ceiling, depth, …, decided in the policy
// evaluation after the token is read), with status Error; a denial at the
// hand-off to the next agent is the hand-off span's, and leaves the
// delegation span clean.
func TestDelegationSpansTellTheTruth(t *testing.T) {
	m, e, rec := tracedMesh(t, sdktrace.AlwaysSample())
	toRes := check(t, e, engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"}).Delegation

	// Ceiling: the researcher writes notes on the orchestrator's behalf.
	d := check(t, e, engine.Request{Token: m.ResT, Delegation: toRes, Method: "POST", Host: "notes.internal", Path: "/notes/plan"})
	ds := spanNamed(t, rec, engine.SpanDelegation)
	if d.Reason != "delegation_ceiling" || attrs(ds)["meshguard.reason"] != "delegation_ceiling" || ds.Status().Code != otelcodes.Error {
		t.Fatalf("ceiling: decision %s, delegation span %v %v", d.Reason, attrs(ds), ds.Status())
	}

	// Hand-off: an assistant acting for the researcher may not hand on
	// (the researcher's maxDepth is 1).
	_, assistT := m.F.Agent(t, "assistant", 1, []string{"researcher"}, "assistant.mesh")
	toAssist := check(t, e, engine.Request{Token: m.ResT, Method: "GET", Host: "assistant.mesh", Path: "/papers"}).Delegation
	d = check(t, e, engine.Request{Token: assistT, Delegation: toAssist, Method: "GET", Host: "emailer.mesh", Path: "/papers"})
	ds, hs := spanNamed(t, rec, engine.SpanDelegation), spanNamed(t, rec, engine.SpanHandOff)
	if d.Allowed || d.Reason != "delegation_depth" {
		t.Fatalf("hand-off: %+v", d)
	}
	if ds.Status().Code != otelcodes.Unset || attrs(ds)["meshguard.reason"] != "" {
		t.Fatalf("the chain itself held, yet its span says %v %v", ds.Status(), attrs(ds))
	}
	if hs.Status().Code != otelcodes.Error || attrs(hs)["meshguard.reason"] != "delegation_depth" || attrs(hs)["gen_ai.agent.name"] != "emailer" {
		t.Fatalf("hand-off span %v %v", hs.Status(), attrs(hs))
	}
}

// TestTheDecisionParentsWhatFollows: what an allowed request carries
// upstream hangs under the decision. With the check span exported, the
// upstream's traceparent names it; MeshGuard starting the trace, the
// upstream joins it; an unsampled caller keeps its own traceparent. The
// delegation token minted for the next agent carries the decision's trace,
// so a hop whose agent dropped the traceparent still hangs under the hop
// that handed it the task.
func TestTheDecisionParentsWhatFollows(t *testing.T) {
	m, e, rec := tracedMesh(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	var r engine.Request
	r.SetTraceparent("00-" + testTraceID + "-" + testParent + "-01")
	r.Token, r.Method, r.Host, r.Path = m.OrchT, "POST", "researcher.mesh", "/research/x"
	first := check(t, e, r)
	want := "00-" + testTraceID + "-" + first.SpanID + "-01"
	if first.Traceparent() != want || !slices.Contains(first.UpstreamHeaders(), engine.Header{Name: engine.HeaderTraceparent, Value: want}) {
		t.Fatalf("upstream traceparent %q (headers %v), want %q", first.Traceparent(), first.UpstreamHeaders(), want)
	}

	// The researcher drops the traceparent but passes the delegation on.
	second := check(t, e, engine.Request{Token: m.ResT, Delegation: first.Delegation, Method: "GET", Host: "emailer.mesh", Path: "/contacts"})
	if second.TraceID != testTraceID {
		t.Fatalf("the second hop started trace %s, not the chain's", second.TraceID)
	}
	s := spanNamed(t, rec, engine.SpanCheck)
	if s.Parent().SpanID().String() != first.SpanID || s.SpanContext().SpanID().String() != second.SpanID {
		t.Fatalf("the second hop's check is under %s, want the first hop's %s", s.Parent().SpanID(), first.SpanID)
	}

	// An unsampled caller keeps its traceparent: the decision's span is
	// not exported, and a parent nobody exported would orphan the rest.
	m2, unsampled, _ := tracedMesh(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	r.SetTraceparent("00-" + testTraceID + "-" + testParent + "-00")
	r.Token = m2.OrchT
	if d := check(t, unsampled, r); !d.Allowed || d.Traceparent() != "" || slices.ContainsFunc(d.UpstreamHeaders(), func(h engine.Header) bool { return h.Name == engine.HeaderTraceparent }) {
		t.Fatalf("unsampled caller: %+v", d)
	}
	// No traceparent and no tracer: the upstream joins the trace the
	// audit record names.
	d := check(t, m.F.Engine, engine.Request{Token: m.OrchT, Method: "GET", Host: "docs.internal", Path: "/docs"})
	if d.Traceparent() != "00-"+d.TraceID+"-"+d.SpanID+"-01" {
		t.Fatalf("a trace MeshGuard started: %q for trace %s", d.Traceparent(), d.TraceID)
	}
}

// TestDenialsAlwaysTraced: with TRACE_DENIALS=always a denial is exported
// even when the sampler dropped its decision — as the check span the audit
// record names (same trace and span ids), under the caller's span — while
// an allowed decision the sampler dropped stays unrecorded.
func TestDenialsAlwaysTraced(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off") // the SDK reads the process environment
	rec := tracetest.NewSpanRecorder()
	tr, err := telemetry.NewTracing(context.Background(), telemetry.TracingConfig{SpanProcessor: rec, AlwaysSampleDenials: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	m := newMesh(t, enginetest.Options{})
	f := m.F
	e, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer, Agents: f.Agents, Policies: f.Policies,
		Names: f.Store, Limiter: f.Limiter, Recorder: f.Audit, Tracer: tr.Tracer(), DenialTracer: tr.DenialTracer(), WithSpanIDs: telemetry.WithSpanIDs})
	if err != nil {
		t.Fatal(err)
	}
	if d := check(t, e, engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"}); !d.Allowed || len(rec.Ended()) != 0 {
		t.Fatalf("an allowed, unsampled decision was recorded: %+v, %d spans", d, len(rec.Ended()))
	}
	for _, parent := range []string{"", testParent} {
		var r engine.Request
		if parent != "" {
			r.SetTraceparent("00-" + testTraceID + "-" + parent + "-00")
		}
		r.Token, r.Method, r.Path = m.MailT, "DELETE", "/contacts/1"
		d := check(t, e, r)
		s := rec.Ended()[len(rec.Ended())-1]
		if d.Allowed || s.Name() != engine.SpanCheck || s.SpanContext().TraceID().String() != d.TraceID || s.SpanContext().SpanID().String() != d.SpanID ||
			s.Status().Code != otelcodes.Error || s.Parent().SpanID().String() != map[string]string{"": "0000000000000000", testParent: testParent}[parent] {
			t.Fatalf("parent %q: denial %+v, span %s %s/%s under %s, status %v", parent, d, s.Name(), s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.Parent().SpanID(), s.Status())
		}
	}
	// A refused delegation is a denial too: its meshguard.delegate span is
	// exported; a minted one the sampler dropped is not.
	ended := len(rec.Ended())
	if out, err := e.Delegate(context.Background(), &engine.DelegateRequest{Caller: engine.Request{Token: m.OrchT}, Delegate: "researcher", Actions: []string{"read:*"}}); err != nil || !out.Allowed || len(rec.Ended()) != ended {
		t.Fatalf("an allowed, unsampled delegation: %+v %v, %d spans recorded", out.Decision, err, len(rec.Ended())-ended)
	}
	out, err := e.Delegate(context.Background(), &engine.DelegateRequest{Caller: engine.Request{Token: m.OrchT}, Delegate: "orchestrator", Actions: []string{"read:*"}})
	if err != nil || out.Allowed || len(rec.Ended()) != ended+1 {
		t.Fatalf("a refused, unsampled delegation: %+v %v, %d spans recorded", out.Decision, err, len(rec.Ended())-ended)
	}
	if s := rec.Ended()[ended]; s.Name() != engine.SpanDelegate || s.SpanContext().TraceID().String() != out.TraceID || s.SpanContext().SpanID().String() != out.SpanID || s.Status().Code != otelcodes.Error {
		t.Fatalf("refused delegation %+v, span %s %s/%s, status %v", out.Decision, s.Name(), s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.Status())
	}
}

// TestAForgedDelegationCarriesNoTrace: the delegation token's traceparent
// is taken only from a token that verifies; a tampered one is denied and
// its claimed trace is not the hop's.
func TestAForgedDelegationCarriesNoTrace(t *testing.T) {
	m, e, _ := tracedMesh(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	var r engine.Request
	r.SetTraceparent("00-" + testTraceID + "-" + testParent + "-01")
	r.Token, r.Method, r.Host, r.Path = m.OrchT, "POST", "researcher.mesh", "/research/x"
	tok := check(t, e, r).Delegation
	forged := tok[:len(tok)-4] + "AAAA" // the signature no longer holds
	d := check(t, e, engine.Request{Token: m.ResT, Delegation: forged, Method: "GET", Host: "crm.internal", Path: "/contacts"})
	if d.Allowed || d.TraceID == testTraceID {
		t.Fatalf("a forged token's trace was taken: %+v", d)
	}
}
