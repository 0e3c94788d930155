package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
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

// phrasedNaively is appendPhrased's contract, the slow way: at each byte,
// the longest phrase that starts there (the first listed of equal length).
func phrasedNaively(src []byte) []byte {
	var out []byte
	for i := 0; i < len(src); {
		best := -1
		for p, ph := range bodyPhrases {
			if strings.HasPrefix(string(src[i:]), ph) && (best < 0 || len(ph) > len(bodyPhrases[best])) {
				best = p
			}
		}
		if best < 0 {
			out = append(out, src[i])
			i++
			continue
		}
		out = append(out, phraseMark, byte(best))
		i += len(bodyPhrases[best])
	}
	return out
}

// TestAppendPhrasedTakesTheLongestPhrase: the indexed encoder phrases a
// record exactly as a scan of every phrase at every byte does, so the
// index finds each phrase it should and prefers the longest — on records,
// on every phrase alone, on phrases run together and cut short.
func TestAppendPhrasedTakesTheLongestPhrase(t *testing.T) {
	r := sampleRecord(t)
	canon, _ := r.Canonical()
	inputs := map[string]string{"canonical record": string(canon), "all phrases run together": strings.Join(bodyPhrases[:], "")}
	for i, ph := range bodyPhrases {
		inputs[fmt.Sprintf("phrase %d", i)] = ph
		inputs[fmt.Sprintf("phrase %d cut short", i)] = ph[:len(ph)-1]
		inputs[fmt.Sprintf("phrase %d after the next one", i)] = bodyPhrases[(i+1)%len(bodyPhrases)] + ph + "x"
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			got, want := appendPhrased(nil, []byte(in)), phrasedNaively([]byte(in))
			if !bytes.Equal(got, want) {
				t.Fatalf("%q:\n got %q\nwant %q", in, got, want)
			}
			back, err := appendUnphrased(nil, got)
			if err != nil || string(back) != in {
				t.Fatalf("does not read back: %q, %v", back, err)
			}
		})
	}
}

// TestEachMemberFindsWhereValuesEnd: the members eachMember splits an
// object into are the object's, whatever their strings hold (escaped
// quotes and backslashes, brackets, commas) and however deep they nest.
func TestEachMemberFindsWhereValuesEnd(t *testing.T) {
	for _, tc := range []struct{ name, obj string }{
		{"flat", `{"a":"x","b":1,"c":true,"d":null}`},
		{"escaped quote", `{"a":"say \"hi\", then }","b":"y"}`},
		{"escaped backslash before a quote", `{"a":"dir\\","b":"\\\\\"","c":2}`},
		{"brackets in strings", `{"a":"[{","b":["}]",{"c":"]"}],"d":{"e":{"f":"{"}}}`},
		{"empty containers", `{"a":{},"b":[],"c":""}`},
		{"one member", `{"a":[1,2,3]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.obj), &want); err != nil {
				t.Fatal(err)
			}
			got := map[string]json.RawMessage{}
			err := eachMember([]byte(tc.obj), func(key, member []byte) {
				got[string(key)] = json.RawMessage(bytes.TrimPrefix(member, []byte(`"`+string(key)+`":`)))
			})
			if err != nil || len(got) != len(want) {
				t.Fatalf("got %q, %v; want %q", got, err, want)
			}
			for k, v := range want {
				if !bytes.Equal(got[k], v) {
					t.Errorf("member %s: got %s, want %s", k, got[k], v)
				}
			}
		})
	}
	for _, bad := range []string{`{"a":"x}`, `{"a":"x\"}`, `{"a":[1,2}`, `{"a"}`} {
		if err := eachMember([]byte(bad), func(_, _ []byte) {}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestHashBytes: a sealed hash is stored as its 32 bytes, and only 64
// lower-case hex digits are one (an upper-case digit would read back as
// other text than the hash sealed).
func TestHashBytes(t *testing.T) {
	sum := sha256.Sum256([]byte("record"))
	good := hex.EncodeToString(sum[:])
	got, err := hashBytes(good)
	if err != nil || !bytes.Equal(got, sum[:]) || hashText(got) != good {
		t.Fatalf("%s: got %x, %v", good, got, err)
	}
	for name, h := range map[string]string{
		"upper case":    strings.ToUpper(good),
		"one upper":     good[:63] + "A",
		"short":         good[:63],
		"long":          good + "0",
		"not hex":       good[:10] + "g" + good[11:],
		"empty":         "",
		"byte past 'f'": good[:5] + "{" + good[6:],
	} {
		if b, err := hashBytes(h); err == nil {
			t.Errorf("%s: %q accepted as %x", name, h, b)
		}
	}
}
