package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// decodeShapes are the JSON texts a record is stored as, of every shape
// the tests know (the engine's records, every id and source form, calls,
// shadow answers, delegation chains, odd times and contexts), in both
// forms: the full canonical encoding (rows before the compact form) and
// what a v1 body unphrases to (the columns' members left out).
func decodeShapes(t testing.TB) map[string][]byte {
	t.Helper()
	rs := append(compactRecords(t, audit.GenesisHash, 8), mixedRecords(t, 6)...)
	odd := mixedRecords(t, 8)
	odd[0].Timestamp = time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)
	odd[1].Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 123456789, time.UTC)
	odd[2].Timestamp = time.Date(2026, 12, 6, 21, 0, 0, 500, time.FixedZone("odd", -(9*3600+30*60)))
	odd[0].Context = map[string]any{`k"ey`: `v\"al\\`, `\`: `"`, "header.x": `","method":"GET","path":"`}
	odd[1].Context = map[string]any{"\u0001": "\\u0001", "query.q": "\uFFFD\u2028\u2029", "n": 1e21, "neg": math.Copysign(0, -1)}
	odd[2].Context = map[string]any{`","agent_`: []any{"tools/call", map[string]any{"b": "\x7f", "a": "<&>"}}, "": ""}
	odd[3].Context = map[string]any{"deep": []any{[]any{}, map[string]any{}, nil, true, false, -1.5e-7, 0.0, 12345678901234567890.0}, "bad utf8": "a\xffb\xc3"}
	odd[3].Call = &audit.Call{Protocol: "a2a", Method: "message/send", JSONRPCID: `"x"`, Notification: true, HeaderOnly: true, SessionID: "s",
		TaskID: "t", ContextID: "c", ArgumentsDigest: "sha256:00", Arguments: json.RawMessage(`{"to":["a","b"],"n":1,"s":"\u2028"}`)}
	odd[4].Call = &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "x", ArgumentsOmitted: true}
	odd[4].Inputs = &audit.Inputs{Revoked: true, Scope: []string{}, Absent: []string{"a", "b"}, AfterPolicy: true,
		Chain: []audit.ChainMember{{Name: "p", Revoked: true}, {Tier: "trusted", Tags: []string{}}}}
	odd[5].Approval = &audit.Approval{ID: "apr_1", Outcome: "pending"}
	odd[5].Shadow = &audit.Shadow{Decision: "deny", Reason: "policy_denied", Policy: "p", Rule: "r"}
	odd[6].AgentName, odd[6].Host, odd[6].Path = "ägent \"q\" \\", "\u2028", "/a\x00b"
	odd[7].Chain, odd[7].Inputs, odd[7].Context = nil, nil, map[string]any{}
	prev := audit.GenesisHash
	for i := range odd {
		odd[i].Hash = ""
		if err := odd[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = odd[i].Hash
	}
	out := map[string][]byte{}
	for _, r := range append(rs, odd...) {
		canon, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		out[r.ID+" canonical"] = canon
		body, err := encodeAuditBody(&r, canon)
		if err != nil {
			t.Fatal(err)
		}
		rest := body[2:]
		if body[1]&flagTime != 0 {
			_, n := binary.Uvarint(rest)
			rest = rest[n:]
		}
		raw, err := appendUnphrased(nil, rest)
		if err != nil {
			t.Fatal(err)
		}
		out[r.ID+" body"] = raw
	}
	return out
}

// oracleRecord is what the reads decoded before the hand decoder:
// json.Unmarshal into a zero Record.
func oracleRecord(raw []byte) (audit.Record, error) {
	var r audit.Record
	err := json.Unmarshal(raw, &r)
	return r, err
}

// sameDecode says whether the hand decoder's answer is the oracle's: the
// same error or none, and the same Record (floats bit for bit: -0 too).
func sameDecode(t *testing.T, raw []byte) {
	t.Helper()
	want, werr := oracleRecord(raw)
	var got audit.Record
	gerr := unmarshalRecord(string(raw), &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: error %v, json.Unmarshal's %v", raw, gerr, werr)
	}
	if werr != nil {
		return
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !reflect.DeepEqual(got, want) || !bytes.Equal(gj, wj) {
		t.Fatalf("%q:\n got %#v\nwant %#v\n got %s\nwant %s", raw, got, want, gj, wj)
	}
}

// TestRecordDecoderMatchesEncodingJSON: every stored shape, and every
// edit of one the decoder might take differently (a key twice, another
// case, null, whitespace, fractions, escapes, invalid UTF-8, truncation),
// decodes as json.Unmarshal decodes it, error for error.
func TestRecordDecoderMatchesEncodingJSON(t *testing.T) {
	shapes := decodeShapes(t)
	for name, raw := range shapes {
		t.Run(name, func(t *testing.T) {
			sameDecode(t, raw)
			// (A year past 9999 is not RFC 3339: time.Time refuses it.)
			p := jsonParser{s: string(raw)}
			var r audit.Record
			if _, err := oracleRecord(raw); err == nil && (!p.record(&r) || p.i != len(raw)) {
				t.Errorf("the hand decoder left a stored shape to encoding/json: %s", raw)
			}
			for i := range raw {
				sameDecode(t, raw[:i])
			}
		})
	}
	base := string(shapes["aud_01a2287480857309d0e60000 body"])
	for _, tc := range []struct{ name, raw string }{
		{"key twice", `{"spanId":"a","spanId":"b"}`},
		{"pointer twice merges", `{"call":{"protocol":"mcp"},"call":{"name":"x"}}`},
		{"context twice", `{"context":{"a":1},"context":{"b":2}}`},
		{"key in another case", `{"SpanId":"a"}`},
		{"unknown key", `{"nope":1}`},
		{"null string", `{"spanId":null}`},
		{"null pointer", `{"call":null,"inputs":null,"approval":null,"shadow":null,"context":null,"chain":null}`},
		{"null in arrays", `{"chain":[null],"context":{"a":[null]}}`},
		{"null arguments", `{"call":{"arguments":null}}`},
		{"whitespace", `{ "spanId" : "a" }`},
		{"leading space", ` {"spanId":"a"}`},
		{"trailing bytes", `{"spanId":"a"}x`},
		{"fraction status", `{"status":200.0}`},
		{"exponent status", `{"status":2e2}`},
		{"negative zero status", `{"status":-0}`},
		{"leading zero", `{"latencyUs":01}`},
		{"int64 overflow", `{"latencyUs":9223372036854775808}`},
		{"int64 max", `{"latencyUs":9223372036854775807,"delegationDepth":-9223372036854775808}`},
		{"string status", `{"status":"200"}`},
		{"float overflow", `{"context":{"n":1e400}}`},
		{"float underflow", `{"context":{"n":1e-400}}`},
		{"numbers", `{"context":{"a":-0,"b":0.5e+3,"c":1E-2,"d":-12.75,"e":0}}`},
		{"bad numbers", `{"context":{"a":-}}`},
		{"bad fraction", `{"context":{"a":1.}}`},
		{"bad exponent", `{"context":{"a":1e}}`},
		{"plus number", `{"context":{"a":+1}}`},
		{"escapes", `{"spanId":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\u2028","context":{"\u0041":"\ud800"}}`},
		{"escaped key", `{"span\u0049d":"a"}`},
		{"bad escape", `{"spanId":"\x"}`},
		{"raw control byte", "{\"spanId\":\"a\x01b\"}"},
		{"invalid utf8", "{\"spanId\":\"a\xff\xfeb\",\"context\":{\"k\xc3\":\"v\xed\xa0\x80\"}}"},
		{"valid utf8", `{"spanId":"ŧrâcé €","context":{"ключ":"значение"}}`},
		{"timestamp", `{"timestamp":"2026-11-29T17:57:37.165412398Z"}`},
		{"timestamp zone", `{"timestamp":"2026-11-29T17:57:37+05:30"}`},
		{"timestamp bad", `{"timestamp":"yesterday"}`},
		{"timestamp number", `{"timestamp":12}`},
		{"timestamp escaped", `{"timestamp":"2026-11-29T17:57:37\u002e5Z"}`},
		{"bool as string", `{"call":{"notification":"true"}}`},
		{"bools", `{"call":{"notification":true,"headerOnly":false,"argumentsOmitted":true},"inputs":{"revoked":true,"afterPolicy":false}}`},
		{"truncated literal", `{"call":{"notification":tru}}`},
		{"arguments shapes", `{"call":{"arguments":"s"}}`},
		{"arguments array", `{"call":{"arguments":[1,{"a":[]},"\u00e9",true,null]}}`},
		{"arguments bad", `{"call":{"arguments":[1,}}`},
		{"empty containers", `{"chain":[],"context":{},"inputs":{"tags":[],"chain":[]},"call":{},"approval":{},"shadow":{}}`},
		{"chain member unknown key", `{"inputs":{"chain":[{"nope":1}]}}`},
		{"chain member twice", `{"inputs":{"chain":[{"name":"a","name":"b"}]}}`},
		{"deep context", `{"context":{"a":` + nest(200) + `}}`},
		{"deep context, fine", `{"context":{"a":` + nest(30) + `}}`},
		{"context not an object", `{"context":[1]}`},
		{"context key twice", `{"context":{"a":1,"a":{"b":2}}}`},
		{"nested key twice", `{"context":{"x":{"a":1,"a":2}}}`},
		{"not an object", `[1]`},
		{"null", `null`},
		{"empty", ``},
		{"empty object", `{}`},
		{"missing comma", `{"spanId":"a""path":"b"}`},
		{"trailing comma", `{"spanId":"a",}`},
		{"array trailing comma", `{"chain":["a",]}`},
		{"unterminated string", `{"spanId":"a`},
		{"backslash at the end", `{"spanId":"a\`},
		{"status overflows int", `{"status":99999999999999999999}`},
		{"record then junk", base + `,`},
	} {
		t.Run(tc.name, func(t *testing.T) { sameDecode(t, []byte(tc.raw)) })
	}
}

func nest(n int) string {
	return string(bytes.Repeat([]byte("["), n)) + "1" + string(bytes.Repeat([]byte("]"), n))
}

// FuzzRecordDecoder: whatever bytes are stored, the hand decoder answers
// as json.Unmarshal does (go test -fuzz FuzzRecordDecoder ./store/).
func FuzzRecordDecoder(f *testing.F) {
	for _, raw := range decodeShapes(f) {
		f.Add(raw)
	}
	f.Add([]byte(`{"context":{"a":[1,-0,1e21,"\u2028",{"b":null}]},"call":{"arguments":{"x":[true]}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) { sameDecode(t, raw) })
}

// TestUnphrasedStringIsAppendUnphrased: the reads' unphrasing gives the
// bytes appendUnphrased gives, and refuses what it refuses.
func TestUnphrasedStringIsAppendUnphrased(t *testing.T) {
	inputs := [][]byte{nil, []byte("plain"), {phraseMark}, {phraseMark, byte(len(bodyPhrases))}, {'x', phraseMark, 0, phraseMark}}
	for _, r := range compactRecords(t, audit.GenesisHash, 4) {
		canon, _ := r.Canonical()
		inputs = append(inputs, appendPhrased(nil, canon))
	}
	longest := 0
	for i, ph := range bodyPhrases {
		if len(ph) > len(bodyPhrases[longest]) {
			longest = i
		}
	}
	long := bytes.Repeat([]byte{phraseMark, byte(longest)}, maxBodyLen/len(bodyPhrases[longest])+1) // past the bound
	if _, err := appendUnphrased(nil, long); err == nil {
		t.Fatal("the bound is not reached")
	}
	inputs = append(inputs, long)
	for i := range bodyPhrases {
		inputs = append(inputs, []byte{'a', phraseMark, byte(i), 'b'})
	}
	for _, in := range inputs {
		want, werr := appendUnphrased(nil, in)
		got, gerr := unphrasedString(in)
		if (werr == nil) != (gerr == nil) || got != string(want) {
			t.Errorf("%.40q: got %.40q, %v; want %.40q, %v", in, got, gerr, want, werr)
		}
	}
}

// BenchmarkUnmarshalRecord decodes every stored shape of decodeShapes
// (each nested object the decoder reads: calls, inputs and their chain,
// approvals, shadow answers, contexts) once an op.
func BenchmarkUnmarshalRecord(b *testing.B) {
	shapes := decodeShapes(b)
	names := make([]string, 0, len(shapes))
	for name := range shapes {
		names = append(names, name)
	}
	slices.Sort(names)
	raws := make([]string, len(names))
	for i, name := range names {
		raws[i] = string(shapes[name])
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, raw := range raws {
			var r audit.Record
			_ = unmarshalRecord(raw, &r)
		}
	}
}
