package filter

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/filterprotocol"
)

// TestBatchEncodingDecodesAsJSONDoes: the batch the filter ships, written
// by the records' canonical encoder (encodeBatch), is the batch
// encoding/json wrote before, as MeshGuard reads it: decoded, every record
// has the same canonical form (the bytes its hash covers) and the same
// revision and dropped count.
func TestBatchEncodingDecodesAsJSONDoes(t *testing.T) {
	at := time.Date(2026, 12, 6, 20, 1, 2, 345678901, time.FixedZone("CET", 3600))
	full := audit.Record{
		ID: "aud_1", Timestamp: at, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", DecisionID: "dec_1",
		AgentID: "agt_1", AgentName: "orchestrator", TrustTier: "verified", Action: "read", Resource: "docs/readme",
		Method: "GET", Path: "/docs/readme", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "allowed",
		Policy: "docs", Rule: "read", Chain: []string{"agt_0", "agt_1"}, DelegationDepth: 1, Source: "wasm",
		SourceAddress: "10.0.0.7", PolicyRevision: "r1", LatencyUs: 12, Mode: "enforce", Proxy: "edge-1",
		Context:  map[string]any{"header.x-team": "blue", "query.q": "<a&b>"},
		Inputs:   &audit.Inputs{Tags: []string{"docs"}, Chain: []audit.ChainMember{{Name: "root", Tier: "trusted", Tags: []string{"x"}}}, Absent: []string{"header.x-absent"}, AfterPolicy: true},
		Approval: &audit.Approval{ID: "apr_1", Outcome: "granted"},
		Shadow:   &audit.Shadow{Decision: "deny", Reason: "r", Policy: "p", Rule: "q"},
	}
	call := full
	call.Call = &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "search", JSONRPCID: `"7"`, SessionID: "s1"}
	call.Call.SetArguments([]byte(`{"q":"x","n":1}`))
	if err := call.Call.DigestArguments(); err != nil {
		t.Fatal(err)
	}
	// Every case is encoded into the array of a larger batch before it
	// (the queue reuses the last batch's, keepBody): nothing of the
	// earlier batch may show.
	dirty, err := encodeBatch(nil, "earlier", 9, []audit.Record{full, call, full, call, full})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		revision string
		dropped  uint64
		recs     []audit.Record
	}{
		{"no records, dropped counted", "", 3, nil},
		{"a refusal without an agent (nil chain, no inputs)", "rev-1", 0, []audit.Record{{ID: "aud_2", Timestamp: at.UTC(), DecisionID: "dec_2", Decision: "deny", Status: 401, Source: "wasm", Mode: "enforce"}}},
		{"every optional part", "rev \"2\"", 1, []audit.Record{full, call}},
		{"an empty context, invalid UTF-8 and HTML characters", "r<3>", 0, []audit.Record{{ID: "aud_3", Timestamp: at, Path: "/a\xffb", Host: "x&y", Context: map[string]any{}, Chain: []string{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(filterprotocol.AuditBatch{Revision: tc.revision, Dropped: tc.dropped, Records: tc.recs})
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeBatch(dirty, tc.revision, tc.dropped, append([]audit.Record(nil), tc.recs...))
			if err != nil {
				t.Fatal(err)
			}
			if &got[0] != &dirty[0] {
				t.Fatal("the batch was not encoded into the array handed to it")
			}
			wb, gb := decodeBatch(t, want), decodeBatch(t, got)
			if gb.Revision != wb.Revision || gb.Dropped != wb.Dropped || len(gb.Records) != len(wb.Records) {
				t.Fatalf("decoded %q, %d, %d records; encoding/json's %q, %d, %d", gb.Revision, gb.Dropped, len(gb.Records), wb.Revision, wb.Dropped, len(wb.Records))
			}
			for i := range wb.Records {
				w, err := wb.Records[i].Canonical()
				if err != nil {
					t.Fatal(err)
				}
				g, err := gb.Records[i].Canonical()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(g, w) {
					t.Errorf("record %d decodes as\n%s\nencoding/json's as\n%s", i, g, w)
				}
			}
		})
	}
}

// decodeBatch reads a batch as MeshGuard does: unknown fields refused.
func decodeBatch(t *testing.T, b []byte) filterprotocol.AuditBatch {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out filterprotocol.AuditBatch
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return out
}

// BenchmarkEncodeBatch is a batch of 100 allow records as the filter
// ships it (encodeBatch) against encoding/json, which it replaced:
// docs/performance.md reports the ratio.
func BenchmarkEncodeBatch(b *testing.B) {
	rec := audit.Record{
		ID: "aud_0123456789abcdef01234567", Timestamp: time.Date(2026, 12, 6, 20, 1, 2, 345678901, time.UTC),
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", DecisionID: "dec_0123456789abcdef01234567",
		AgentID: "agt_0123456789abcdef", AgentName: "orchestrator", TrustTier: "verified", Action: "read", Resource: "docs/readme",
		Method: "GET", Path: "/docs/readme", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "allowed",
		Policy: "docs", Rule: "read", Chain: []string{"agt_0123456789abcdef"}, Source: "wasm",
		SourceAddress: "10.0.0.7", PolicyRevision: "r1", LatencyUs: 12, Mode: "enforce",
		Inputs: &audit.Inputs{Tags: []string{"orchestrator"}},
	}
	recs := make([]audit.Record, 100)
	for i := range recs {
		recs[i] = rec
	}
	b.Run("encoding=json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(filterprotocol.AuditBatch{Revision: "r1", Records: recs}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding=canonical", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeBatch(nil, "r1", 0, recs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAuditQueueKeepsBodyWithinBound: the queue keeps a dispatched batch's
// body for the next batch only up to maxKeptBody, so a batch of large
// records is not held for good.
func TestAuditQueueKeepsBodyWithinBound(t *testing.T) {
	for _, tc := range []struct {
		name string
		cap  int
		kept bool
	}{
		{"a usual batch", 70 << 10, true},
		{"at the bound", maxKeptBody, true},
		{"over the bound", maxKeptBody + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &auditQueue{body: make([]byte, 1)}
			q.keepBody(make([]byte, 10, tc.cap))
			if kept := q.body != nil; kept != tc.kept {
				t.Fatalf("kept %v, want %v", kept, tc.kept)
			}
		})
	}
}
