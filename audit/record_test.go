package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func chain(t testing.TB, n int) []Record {
	t.Helper()
	at := time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.UTC)
	rs := make([]Record, n)
	prev := GenesisHash
	for i := range rs {
		rs[i] = Record{
			ID: fmt.Sprintf("aud_%03d", i), Timestamp: at.Add(time.Duration(i) * time.Millisecond),
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", DecisionID: fmt.Sprintf("dec_%03d", i),
			AgentID: "agent_emailer", AgentName: "emailer", TrustTier: "verified",
			Action: "write:email", Resource: "/email", Method: "POST", Path: "/email", Host: "smtp.mesh",
			Decision: "allow", Status: 200, Reason: "rule_allow", Policy: "emailers", Rule: "send",
			Chain: []string{"agent_orch", "agent_emailer"}, DelegationDepth: 1, Source: "ext_authz-grpc",
			SourceAddress: "10.0.0.7", PolicyRevision: "9a86a804e8827473", LatencyUs: 42,
			Context: map[string]any{"recipient": "a@example.com", "n": 2}, Mode: "enforce",
		}
		if err := rs[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = rs[i].Hash
	}
	return rs
}

func verifyAll(rs []Record) error {
	v := NewVerifier(GenesisHash)
	for i := range rs {
		if err := v.Next(&rs[i]); err != nil {
			return err
		}
	}
	return nil
}

func TestChainVerifies(t *testing.T) {
	rs := chain(t, 5)
	if err := verifyAll(rs); err != nil {
		t.Fatal(err)
	}
	if rs[0].PrevHash != GenesisHash || rs[1].PrevHash != rs[0].Hash || len(rs[4].Hash) != 64 {
		t.Fatalf("links: %+v", rs[:2])
	}
}

func TestTamperingIsFound(t *testing.T) {
	tests := []struct {
		name   string
		tamper func([]Record) []Record
		index  int
		why    string
	}{
		{"edited decision", func(rs []Record) []Record { rs[2].Decision = "deny"; return rs }, 2, "edited"},
		{"edited chain", func(rs []Record) []Record { rs[1].Chain = []string{"agent_emailer"}; return rs }, 1, "edited"},
		{"edited context", func(rs []Record) []Record {
			rs[3].Context = map[string]any{"recipient": "eve@evil.test", "n": 2}
			return rs
		}, 3, "edited"},
		{"edited time", func(rs []Record) []Record { rs[0].Timestamp = rs[0].Timestamp.Add(time.Nanosecond); return rs }, 0, "edited"},
		{"deleted record", func(rs []Record) []Record { return append(rs[:2], rs[3:]...) }, 2, "deleted"},
		{"swapped records", func(rs []Record) []Record { rs[1], rs[2] = rs[2], rs[1]; return rs }, 1, "reordered"},
		{"re-sealed edit", func(rs []Record) []Record {
			rs[2].Decision = "deny"
			_ = rs[2].Seal(rs[1].Hash) // the forger recomputes this record's hash…
			return rs
		}, 3, "prevHash"}, // …and the next record's link gives it away
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyAll(tc.tamper(chain(t, 5)))
			var b *Break
			if !errors.As(err, &b) || !errors.Is(err, ErrBroken) || b.Index != tc.index || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("got %v, want a break at %d mentioning %q", err, tc.index, tc.why)
			}
		})
	}
}

// TestCanonicalEncoding: what a store gives back — decoded from the
// stored encoding, in another time zone, with numbers as float64 — hashes
// the same, whatever the strings hold.
func TestCanonicalEncoding(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Record)
	}{
		{"plain", func(*Record) {}},
		{"other time zone", func(r *Record) { r.Timestamp = r.Timestamp.In(time.FixedZone("CET", 3600)) }},
		{"control characters and quotes", func(r *Record) { r.Reason = "a\"b\\c\n\t\x00\x1f\x7f</script>&" }},
		{"invalid UTF-8", func(r *Record) { r.Path = "/a\xff\xfe/\xed\xa0\x80" }},
		{"non-ASCII", func(r *Record) { r.AgentName = "récupérateur 研究者 \u2028" }},
		{"nil chain", func(r *Record) { r.Chain = nil }},
		{"no context", func(r *Record) { r.Context = nil }},
		{"empty context", func(r *Record) { r.Context = map[string]any{} }},
		{"more context keys than the encoder's room on the stack", func(r *Record) {
			r.Context = map[string]any{}
			for i := range 40 {
				r.Context[fmt.Sprintf("header.x-%02d", 39-i)] = fmt.Sprint(i)
			}
		}},
		{"nested context", func(r *Record) {
			r.Context = map[string]any{"z": []any{1.5, "x", nil, true}, "a": map[string]any{"k": 1e21}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := chain(t, 1)[0]
			tc.edit(&r)
			if err := r.Seal(GenesisHash); err != nil {
				t.Fatal(err)
			}
			back := roundTrip(t, &r)
			if err := NewVerifier(GenesisHash).Next(back); err != nil {
				t.Fatalf("a re-read record no longer verifies: %v", err)
			}
		})
	}
}

// roundTrip stores r's canonical encoding the way a store does and reads
// it back.
func roundTrip(t testing.TB, r *Record) *Record {
	t.Helper()
	body, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(body, &back); err != nil {
		t.Fatalf("canonical encoding is not JSON: %v\n%s", err, body)
	}
	back.PrevHash, back.Hash = r.PrevHash, r.Hash
	return &back
}

func BenchmarkSeal(b *testing.B) {
	r := chain(b, 1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Seal(GenesisHash); err != nil {
			b.Fatal(err)
		}
	}
}
