package audit

import (
	"strings"
	"testing"
	"time"
)

// TestSealIsStable pins the bytes a record's hash covers and the hash
// itself, as the chain has always sealed them: a faster encoder or hasher
// that changed one byte would make every stored chain fail to verify.
// The strings cross the encoder's 8-byte fast path at every offset, with
// an escape, a control character, invalid UTF-8 or non-ASCII text in each
// position.
func TestSealIsStable(t *testing.T) {
	r := Record{
		ID: "aud_01a24c813f04bfc740b7a8ac", Timestamp: time.Date(2026, 12, 6, 17, 57, 48, 420323019, time.FixedZone("CET", 3600)),
		TraceID: "8e26b00c597ee8b1ef1a90161e6314fc", SpanID: "4ae9520c12c35cc1", DecisionID: "dec_01a24c813f04bfc740b7a8ac",
		AgentID: "agent_pwum5infxaq6f3safujn", AgentName: "récupérateur 研究者 \u2028", TrustTier: "verified",
		Action: "write:email", Resource: "/email", Method: "POST", Path: "/email?to=a@example.com&x=\"q\"\\",
		Host: "smtp.internal", Decision: "allow", Status: 200, Reason: "a\"b\\c\n\t\r\x00\x1f\x7f</script>&",
		Policy: "emailers", Rule: "send", Chain: []string{"agent_orch", "agent_pwum5infxaq6f3safujn"}, DelegationDepth: 1,
		Source: "ext_authz-grpc", SourceAddress: "10.0.0.7", PolicyRevision: "4e6294c7e6e0dbf2", LatencyUs: 831,
		Context: map[string]any{"query.to": "a@example.com", "header.x": "/a\xff\xfe/\xed\xa0\x80", "n": 2.5},
		Mode: "enforce", Proxy: "proxy-1",
		Inputs:   &Inputs{Tags: []string{"emailer"}},
		Approval: &Approval{ID: "apr_1", Outcome: "granted"},
		Shadow:   &Shadow{Decision: "deny", Reason: "rule_deny", Policy: "strict", Rule: "r"},
	}
	var special strings.Builder
	for i, s := range []string{"\"", "\\", "\n", "\x01", "\xff", "é", "研", "\u2028"} {
		for off := range 9 {
			special.WriteString(strings.Repeat("abcdefgh", i%2) + strings.Repeat("x", off) + s + "|")
		}
	}
	r.Resource = special.String()
	if err := r.Seal(GenesisHash); err != nil {
		t.Fatal(err)
	}
	const wantHash = "3b61e3170908bf69f9a336bab9dce43320b89b944c04487dd3d444368caca85d"
	body, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if r.Hash != wantHash {
		t.Fatalf("hash %s, want %s: the encoding is\n%s", r.Hash, wantHash, body)
	}
}
