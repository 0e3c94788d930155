package server

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/engine"
)

// TestCheckWaitKeepsOneTrace: a POST /v1/check that waits (Prefer: wait)
// and was sent without a traceparent is one trace, not two: the decision
// after the wait continues the first decision's trace, so the trace the
// caller is answered with holds the whole story — requested, approved,
// granted — as `meshguard audit trace` shows it.
func TestCheckWaitKeepsOneTrace(t *testing.T) {
	r := start(t, withAsk(t))
	ctx := context.Background()
	h := bearerOf(r.agent(t, "asker", "asker"))
	h["Prefer"] = "wait=60"
	body := `{"action":"send:mail","resource":"/mail/1","context":{"to":"bob@example.com"}}`
	done := make(chan answer, 1)
	go func() { done <- r.call(t, ctx, "POST", "/v1/check", h, body) }()
	eventually(t, "the check waiting", func() bool { return r.waiters(t) == 1 })
	pending, err := r.admin.ListApprovals(ctx, client.ApprovalFilter{Status: "pending"})
	if err != nil || len(pending.Approvals) != 1 {
		t.Fatalf("pending: %v, %v", pending, err)
	}
	ap := pending.Approvals[0]
	if _, err := r.admin.DecideApproval(ctx, ap.ID, true, api.ApprovalDecision{By: "alice"}); err != nil {
		t.Fatal(err)
	}
	a := <-done
	m := a.json(t)
	if a.code != 200 || m["reason"] != engine.ReasonApprovalGranted {
		t.Fatalf("the waiting check: %d %s", a.code, a.body)
	}
	if m["traceId"] != ap.TraceID || a.header.Get(engine.HeaderTraceID) != ap.TraceID {
		t.Fatalf("the answer's trace %v (header %q), want the approval's %s", m["traceId"], a.header.Get(engine.HeaderTraceID), ap.TraceID)
	}
	var recs []map[string]any
	eventually(t, "the trace's records", func() bool {
		tr, err := r.admin.AuditTrace(ctx, ap.TraceID)
		if err != nil {
			return false
		}
		b, _ := json.Marshal(tr.Records)
		recs = nil
		_ = json.Unmarshal(b, &recs)
		return len(recs) == 3
	})
	for i, want := range []string{"requested", "approved", "granted"} {
		if appr, _ := recs[i]["approval"].(map[string]any); appr["outcome"] != want || appr["id"] != ap.ID {
			t.Fatalf("record %d: %v, want outcome %s of %s", i, recs[i], want, ap.ID)
		}
	}
}
