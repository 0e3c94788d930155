package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// reissuable is a record as engine.KeepRecord keeps it: every member a
// RunEncoder may copy is set.
func reissuable() Record {
	return Record{
		ID: "aud_01a24c813f04bfc740b7a8ac", Timestamp: time.Date(2026, 12, 7, 3, 4, 5, 6, time.UTC),
		TraceID: "8e26b00c597ee8b1ef1a90161e6314fc", SpanID: "4ae9520c12c35cc1",
		DecisionID: "dec_01a24c813f04bfc740b7a8ac", AgentID: "agent_pwum5infxaq6f3safujn",
		AgentName: "emailer", TrustTier: "verified", Action: "write:email", Resource: "/email", Method: "POST",
		Path: "/email?to=a@example.com", Host: "smtp.internal", Decision: "allow", Status: 200, Reason: "rule_allow",
		Policy: "emailers", Rule: "send", Chain: []string{"agent_root", "agent_pwum5infxaq6f3safujn"},
		DelegationDepth: 1, Source: "wasm", SourceAddress: "10.0.0.7", PolicyRevision: "4e6294c7e6e0dbf2",
		LatencyUs: 831, Context: map[string]any{"query.to": "a@example.com"}, Mode: "enforce", Proxy: "edge-1",
		Call:     &Call{Protocol: "mcp", Method: "tools/call", Name: "send", Arguments: []byte(`{"to":"a"}`)},
		Inputs:   &Inputs{Tags: []string{"emailer"}},
		Approval: &Approval{ID: "apr_1", Outcome: "granted"},
		Shadow:   &Shadow{Decision: "deny", Reason: "rule_deny", Policy: "p", Rule: "r"},
	}
}

// reissue is a copy of r as engine.Reissue makes one: new ids, time,
// trace, span and latency, everything else shared.
func reissue(r Record, n int) Record {
	r.ID = "aud_" + string(rune('a'+n%26)) + r.ID[5:]
	r.DecisionID = "dec_" + r.ID[4:]
	r.Timestamp = r.Timestamp.Add(time.Duration(n) * time.Millisecond)
	r.TraceID, r.SpanID = r.TraceID[1:]+"x", r.SpanID[1:]+"y"
	r.LatencyUs = int64(n)
	return r
}

// canonicalRun is what a run encodes to: each record's Canonical, in turn.
func canonicalRun(t testing.TB, recs []Record) []byte {
	t.Helper()
	var want []byte
	for i := range recs {
		c, err := recs[i].Canonical()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		want = append(want, c...)
	}
	return want
}

func encodeRun(t testing.TB, recs []Record) []byte {
	t.Helper()
	var e RunEncoder
	var got []byte
	for i := range recs {
		var err error
		if got, err = e.Append(got, &recs[i]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	return got
}

// TestRunEncoderChangedMembers: a record that differs from the one before
// in any one member is encoded with that member's new value, never with
// the bytes kept from before. Each change below is to a member the
// encoder copies; leaving one out of sameMiddle or sameTail fails here.
func TestRunEncoderChangedMembers(t *testing.T) {
	changes := []struct {
		name   string
		change func(*Record)
	}{
		{"agentId", func(r *Record) { r.AgentID = "agent_other" }},
		{"agentName", func(r *Record) { r.AgentName = "other" }},
		{"trustTier", func(r *Record) { r.TrustTier = "trusted" }},
		{"action", func(r *Record) { r.Action = "read:email" }},
		{"resource", func(r *Record) { r.Resource = "/other" }},
		{"method", func(r *Record) { r.Method = "GET" }},
		{"path", func(r *Record) { r.Path = "/email?to=b@example.com" }},
		{"host", func(r *Record) { r.Host = "other.internal" }},
		{"decision", func(r *Record) { r.Decision = "deny" }},
		{"status", func(r *Record) { r.Status = 403 }},
		{"reason", func(r *Record) { r.Reason = "no_rule" }},
		{"policy", func(r *Record) { r.Policy = "other" }},
		{"rule", func(r *Record) { r.Rule = "other" }},
		{"chain element", func(r *Record) { r.Chain = []string{"agent_root", "agent_other"} }},
		{"chain length", func(r *Record) { r.Chain = r.Chain[1:] }},
		{"chain empty", func(r *Record) { r.Chain = nil }},
		{"delegationDepth", func(r *Record) { r.DelegationDepth = 2 }},
		{"source", func(r *Record) { r.Source = "gateway" }},
		{"sourceAddress", func(r *Record) { r.SourceAddress = "10.0.0.8" }},
		{"policyRevision", func(r *Record) { r.PolicyRevision = "0000000000000000" }},
		{"context, another map alike", func(r *Record) { r.Context = map[string]any{"query.to": "a@example.com"} }},
		{"context, another map", func(r *Record) { r.Context = map[string]any{"query.to": "b@example.com"} }},
		{"context none", func(r *Record) { r.Context = nil }},
		{"mode", func(r *Record) { r.Mode = "shadow" }},
		{"proxy", func(r *Record) { r.Proxy = "edge-2" }},
		{"call", func(r *Record) { r.Call = &Call{Protocol: "mcp", Method: "tools/list"} }},
		{"call none", func(r *Record) { r.Call = nil }},
		{"inputs", func(r *Record) { r.Inputs = &Inputs{Tags: []string{"other"}} }},
		{"inputs none", func(r *Record) { r.Inputs = nil }},
		{"approval", func(r *Record) { r.Approval = &Approval{ID: "apr_2", Outcome: "denied"} }},
		{"shadow", func(r *Record) { r.Shadow = nil }},
	}
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			kept := reissuable()
			changed := reissue(kept, 2)
			tc.change(&changed)
			recs := []Record{reissue(kept, 1), changed, reissue(kept, 3), reissue(kept, 4)}
			if got, want := encodeRun(t, recs), canonicalRun(t, recs); !bytes.Equal(got, want) {
				t.Fatalf("run encoded as\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestRunEncoderReissuedRun: a run of reissued copies, with their own ids,
// times, traces, spans and latencies, encodes as each alone; so does a
// record the encoder refuses in the middle of it (the output is left as it
// was and the records after it are encoded in full), and a sealed record
// (its sealed bytes).
func TestRunEncoderReissuedRun(t *testing.T) {
	kept := reissuable()
	bad := reissue(kept, 3)
	bad.Call = &Call{Protocol: "mcp", Method: "tools/call", Arguments: []byte(`{"to":`)}
	sealed := reissue(kept, 5)
	if err := sealed.Seal(GenesisHash); err != nil {
		t.Fatal(err)
	}
	var e RunEncoder
	var got, want []byte
	for i, r := range []Record{reissue(kept, 1), reissue(kept, 2), bad, reissue(kept, 4), sealed, reissue(kept, 6)} {
		before := len(got)
		var err error
		got, err = e.Append(got, &r)
		if r.Call == bad.Call {
			if !errors.Is(err, ErrBadArguments) || len(got) != before {
				t.Fatalf("record %d: err %v, %d bytes written; want ErrBadArguments and none", i, err, len(got)-before)
			}
			continue
		}
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		c, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, c...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("run encoded as\n%s\nwant\n%s", got, want)
	}
}

// FuzzRunEncoder: any run of records drawn from two kept records, changed
// member by member (the middle's and the tail's: a new map or pointer, the
// other kept record's, none), refused by the encoder (arguments not JSON),
// sealed, or reissued as they are, encodes as each record's Canonical; a
// refused record writes nothing and is refused by Canonical too.
func FuzzRunEncoder(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5})
	f.Add([]byte{7, 7, 7, 200, 9, 31, 0xff})
	f.Add([]byte{0, 0, 0, 12, 0, 0, 1, 13, 1, 0, 0, 9, 0, 0})
	f.Fuzz(func(t *testing.T, draw []byte) {
		kept := reissuable()
		other := reissuable()
		other.Context = map[string]any{"header.x": "\x00\"é\xff"}
		other.Inputs, other.Call = nil, nil
		var recs []Record
		for i := 0; i+1 < len(draw) && len(recs) < 64; i += 2 {
			base, alt := kept, other
			if draw[i]&1 != 0 {
				base, alt = other, kept
			}
			r := reissue(base, int(draw[i]))
			v := string(binary.AppendUvarint(nil, uint64(draw[i+1])))
			switch draw[i+1] % 16 {
			case 1:
				r.Path += v
			case 2:
				r.Chain = append([]string{v}, r.Chain...)
			case 3:
				r.Status += int(draw[i+1])
			case 4:
				r.Mode = v
			case 5:
				r.Context = map[string]any{"k": v}
			case 6:
				r.PolicyRevision = v
			case 7:
				r.Context = nil
			case 8:
				r.Proxy = v
			case 9:
				r.Approval = &Approval{ID: v, Outcome: "granted"}
			case 10:
				r.Shadow, r.Context = nil, alt.Context
			case 11:
				r.Inputs = &Inputs{Tags: []string{v}}
			case 12:
				r.Call = &Call{Protocol: "mcp", Method: "tools/call", Arguments: []byte(`{"to":` + v)}
			case 13:
				if err := r.Seal(GenesisHash); err != nil {
					t.Fatal(err)
				}
			case 14:
				r.Call, r.Inputs = alt.Call, alt.Inputs
			case 15:
				r.Chain = nil
			}
			recs = append(recs, r)
		}
		var e RunEncoder
		var got, want []byte
		for i := range recs {
			before := len(got)
			var err error
			got, err = e.Append(got, &recs[i])
			c, cerr := recs[i].Canonical()
			if (err == nil) != (cerr == nil) {
				t.Fatalf("record %d: RunEncoder's error %v, Canonical's %v", i, err, cerr)
			}
			if err != nil {
				if len(got) != before {
					t.Fatalf("record %d refused (%v) with %d bytes written", i, err, len(got)-before)
				}
				continue
			}
			want = append(want, c...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("run encoded as\n%q\nwant\n%q", got, want)
		}
	})
}

// BenchmarkRunEncoder encodes a batch of 100 reissued records one by one
// (each's Canonical appended, as the wasm filter's batches were) and with
// a RunEncoder.
func BenchmarkRunEncoder(b *testing.B) {
	kept := reissuable()
	kept.Call, kept.Approval, kept.Shadow, kept.Context, kept.Proxy = nil, nil, nil, nil, ""
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = reissue(kept, i)
	}
	buf := make([]byte, 0, 700*len(recs))
	b.Run("canonical", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out := buf[:0]
			for i := range recs {
				c, err := recs[i].Canonical()
				if err != nil {
					b.Fatal(err)
				}
				out = append(out, c...)
			}
		}
	})
	b.Run("run", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e RunEncoder
			out := buf[:0]
			for i := range recs {
				var err error
				if out, err = e.Append(out, &recs[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
