package store

import (
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// sampleRecord is a denied tool call as the engine records it.
func sampleRecord(tb testing.TB) audit.Record {
	tb.Helper()
	r := audit.Record{ID: "aud_01a228748f0df6de3f687745", Timestamp: time.Date(2026, 11, 29, 17, 57, 37, 165412398, time.UTC),
		TraceID: "3792e9179db5df94934d3ed73791e18a", SpanID: "0411feac429ec27b", DecisionID: "dec_01a228748f0df6de3f687745",
		AgentID: "agent_00000000000000000000", AgentName: "mailer-0", TrustTier: "verified", Action: "call:mail/send_email",
		Resource: "/mcp", Method: "POST", Path: "/mcp", Host: "api.internal", Decision: "deny", Status: 403, Reason: "policy_denied",
		Policy: "mailers", Rule: "external", Chain: []string{"agent_00000000000000000000"}, Source: "ext_authz-grpc",
		SourceAddress: "10.0.3.17", PolicyRevision: "r17", LatencyUs: 30, Context: map[string]any{"arguments.to": "eve@evil.example"},
		Mode: "enforce", Call: &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "0"},
		Inputs: &audit.Inputs{Tags: []string{"mailer"}}}
	if err := r.Seal(audit.GenesisHash); err != nil {
		tb.Fatal(err)
	}
	return r
}

// BenchmarkEncodeAuditBody is the compact form's cost a record in the
// audit writer (AppendAudit encodes every record of a batch).
func BenchmarkEncodeAuditBody(b *testing.B) {
	r := sampleRecord(b)
	canon, _ := r.Canonical()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeAuditBody(&r, canon); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAuditBody is its cost a record read (queries, verify).
func BenchmarkDecodeAuditBody(b *testing.B) {
	r := sampleRecord(b)
	canon, _ := r.Canonical()
	body, _ := encodeAuditBody(&r, canon)
	c := auditColumns{id: r.ID, agentID: r.AgentID, action: r.Action, decision: r.Decision, traceID: r.TraceID, reason: r.Reason, source: r.Source, ts: r.Timestamp.UnixMicro(), status: r.Status}
	b.ReportAllocs()
	for b.Loop() {
		if got := decodeAuditBody(body, c); got.Unreadable != "" {
			b.Fatal(got.Unreadable)
		}
	}
}
