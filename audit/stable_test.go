package audit

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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
		Mode:    "enforce", Proxy: "proxy-1",
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

// appendStringBytewise is appendString as it was before its 8-byte fast
// path, one byte at a time: the reference the fast path must equal.
func appendStringBytewise(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if r, size := utf8.DecodeRuneInString(s[i:]); r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...) // each invalid byte, as the decoder reads it
			continue
		} else if size > 1 {
			b = append(b, s[i:i+size]...)
			i += size - 1
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// TestAppendStringWordWise: every byte value, at every offset of strings
// of every length up to three words, among plain ASCII, is written as the
// byte-wise encoder writes it: short strings (no whole word), whole words,
// and tails the last word overlaps.
func TestAppendStringWordWise(t *testing.T) {
	for n := 1; n <= 24; n++ {
		for c := range 256 {
			for off := range n {
				s := strings.Repeat("a", off) + string([]byte{byte(c)}) + strings.Repeat("z", n-1-off)
				got, want := appendString(nil, s), appendStringBytewise(nil, s)
				if string(got) != string(want) {
					t.Fatalf("byte %#x at offset %d of %d: %q, want %q", c, off, n, got, want)
				}
			}
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("0123456789abcdef\"\\\n\x00\x7f\x80\xff é研")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendString(nil, s), appendStringBytewise(nil, s); string(got) != string(want) {
			t.Fatalf("%q: %q, want %q", s, got, want)
		}
	})
}

// BenchmarkCanonical encodes the record of a typical decision (the
// engine's plain request: 722 bytes).
func BenchmarkCanonical(b *testing.B) {
	r := Record{
		ID: "aud_01a24c813f04bfc740b7a8ac", Timestamp: time.Now(), TraceID: "8e26b00c597ee8b1ef1a90161e6314fc",
		SpanID: "4ae9520c12c35cc1", DecisionID: "dec_01a24c813f04bfc740b7a8ac", AgentID: "agent_pwum5infxaq6f3safujn",
		AgentName: "emailer", TrustTier: "verified", Action: "write:email", Resource: "/email", Method: "POST",
		Path: "/email?to=a@example.com", Host: "smtp.internal", Decision: "allow", Status: 200, Reason: "rule_allow",
		Policy: "emailers", Rule: "send", Chain: []string{"agent_pwum5infxaq6f3safujn"}, SourceAddress: "10.0.0.7",
		PolicyRevision: "4e6294c7e6e0dbf2", LatencyUs: 831, Context: map[string]any{"query.to": "a@example.com"},
		Mode: "enforce", Inputs: &Inputs{Tags: []string{"emailer"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := appendCanonical(make([]byte, 0, 768), &r); err != nil {
			b.Fatal(err)
		}
	}
}
