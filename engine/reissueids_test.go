package engine_test

import (
	"context"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestReissuedTraceparentIsTheDecisions: a reissued decision's ids are
// made in one string with the traceparent the upstream gets (reissueIDs);
// that traceparent is the decision's own trace and span, as Check's is,
// the caller's trace kept when it sent one, and none when the caller's
// span stays the upstream's parent. A decision whose ids a caller changes
// afterwards renders the changed ones, not the string made with them.
func TestReissuedTraceparentIsTheDecisions(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name      string
		headers   map[string]string
		wantTrace string // "" for a fresh one
		parents   bool
	}{
		{"no trace: a fresh one", nil, "", true},
		{"a trace id alone: kept", map[string]string{"x-b3-traceid": callerTrace}, callerTrace, true},
		{"a traceparent: its span stays the parent", map[string]string{"traceparent": "00-" + callerTrace + "-00f067aa0ba902b7-01"}, callerTrace, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"}
			r.SetTraceparent(tc.headers["traceparent"])
			if id := tc.headers["x-b3-traceid"]; id != "" {
				r.TraceID = id
			}
			d := check(t, m.F.Engine, r)
			again := r
			re, err := m.F.Engine.Reissue(context.Background(), &again, &d)
			if err != nil {
				t.Fatal(err)
			}
			if re.ID == d.ID || re.SpanID == d.SpanID || len(re.SpanID) != 16 || !edge.ValidTraceID(re.TraceID) {
				t.Fatalf("reissued ids %q %q %q, the first's %q %q %q", re.ID, re.TraceID, re.SpanID, d.ID, d.TraceID, d.SpanID)
			}
			if tc.wantTrace != "" && re.TraceID != tc.wantTrace {
				t.Errorf("trace %q, want the caller's %q", re.TraceID, tc.wantTrace)
			}
			want := ""
			if tc.parents {
				want = edge.Traceparent{TraceID: re.TraceID, SpanID: re.SpanID, Sampled: true}.String()
			}
			if got := re.Traceparent(); got != want {
				t.Errorf("traceparent %q, want %q", got, want)
			}
			if got, fresh := re.Traceparent() != "", d.Traceparent() != ""; got != fresh {
				t.Errorf("reissued parents the upstream: %v, Check's decision: %v", got, fresh)
			}
			if tc.parents {
				re.SpanID = "00f067aa0ba902b7"
				if got := re.Traceparent(); got != "00-"+re.TraceID+"-00f067aa0ba902b7-01" {
					t.Errorf("after the span id changed, traceparent %q", got)
				}
			}
		})
	}
}
