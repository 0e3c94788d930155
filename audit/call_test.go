package audit

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// goldenHash is the hash chain(t, 1)[0] had before records carried a
// call: a record without one must encode exactly as before, or every
// chain sealed by an older MeshGuard stops verifying.
const goldenHash = "9b861729644ea3c849f3d92af2bcea75a83e6a847a62413350671051a95f48f3"

func TestRecordWithoutCallEncodesAsBefore(t *testing.T) {
	if h := chain(t, 1)[0].Hash; h != goldenHash {
		t.Fatalf("a record without a call hashes to %s, not %s as before", h, goldenHash)
	}
}

func callRecord(t testing.TB) Record {
	t.Helper()
	r := chain(t, 1)[0]
	r.Action, r.Resource = "call:mail/send_email", "/mcp"
	r.Call = &Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: `"7"`, SessionID: "s-1"}
	r.Call.SetArguments([]byte(`{"to":"a@example.com","n":12345678901234567890,"options":{"cc":["b@example.com"]}}`))
	if err := r.Seal(GenesisHash); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCallDigestAndRoundTrip(t *testing.T) {
	r := callRecord(t)
	// The same arguments in another key order and spacing digest alike.
	want, err := ArgumentsDigest([]byte(`{ "options":{"cc":["b@example.com"]}, "n":12345678901234567890, "to":"a@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Call.ArgumentsDigest != want || len(want) != 64 {
		t.Fatalf("digest %q, want %q", r.Call.ArgumentsDigest, want)
	}
	if empty, _ := ArgumentsDigest(nil); empty != "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Fatalf("absent arguments digest as %s, not as {}", empty)
	}
	// A fixed vector: sha256 of {"a":{"x":"é","y":2},"b":1}, however the
	// arguments were spelt (escapes, key order, spacing).
	const vector = "01967a582613fa9b2f292d2675496e66761188f00c78114515649f49bddf1945"
	for _, raw := range []string{`{"b":1,"a":{"y":2,"x":"é"}}`, "{ \"a\" : {\"x\":\"\\u00e9\",\"y\":2},\n\"b\":1}"} {
		if d, err := ArgumentsDigest([]byte(raw)); err != nil || d != vector {
			t.Fatalf("ArgumentsDigest(%s) = %s, %v; want %s", raw, d, err, vector)
		}
	}
	if r.Call.Arguments != nil {
		t.Fatal("arguments recorded without the setting")
	}
	back := roundTrip(t, &r)
	if err := NewVerifier(GenesisHash).Next(back); err != nil {
		t.Fatalf("a re-read record with a call no longer verifies: %v", err)
	}
	if back.Call == nil || back.Call.Name != "send_email" || back.Call.JSONRPCID != `"7"` || back.Call.ArgumentsDigest != want {
		t.Fatalf("call after a round trip: %+v", back.Call)
	}
}

func TestTamperedCallIsFound(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(*Record)
	}{
		{"tool renamed", func(r *Record) { r.Call.Name = "list_inbox" }},
		{"digest replaced", func(r *Record) { r.Call.ArgumentsDigest = strings.Repeat("0", 64) }},
		{"id type changed", func(r *Record) { r.Call.JSONRPCID = "7" }},
		{"notification flag set", func(r *Record) { r.Call.Notification = true }},
		{"session changed", func(r *Record) { r.Call.SessionID = "s-2" }},
		{"arguments added", func(r *Record) { r.Call.Arguments = json.RawMessage(`{"to":"eve@evil.test"}`) }},
		{"call removed", func(r *Record) { r.Call = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := callRecord(t)
			back := roundTrip(t, &r)
			tc.tamper(back)
			err := NewVerifier(GenesisHash).Next(back)
			if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "edited") {
				t.Fatalf("got %v, want the edit found", err)
			}
		})
	}
}

type memStore struct{ rs []Record }

func (m *memStore) AppendAudit(_ context.Context, rs []Record) error {
	m.rs = append(m.rs, rs...)
	return nil
}
func (m *memStore) LastAuditHash(context.Context) (string, error) {
	if len(m.rs) == 0 {
		return GenesisHash, nil
	}
	return m.rs[len(m.rs)-1].Hash, nil
}

func TestWriterRecordsArguments(t *testing.T) {
	big := `{"blob":"` + strings.Repeat("x", MaxRecordedArguments) + `"}`
	tests := []struct {
		name    string
		cfg     ArgumentsConfig
		args    string
		want    string // the recorded arguments, "" for none
		omitted bool
	}{
		{"off by default", ArgumentsConfig{}, `{"to":"a@example.com","password":"p"}`, "", false},
		{"default redaction at any depth", ArgumentsConfig{Record: true},
			`{"to":"a@example.com","auth":{"token":"t","list":[{"api_key":"k","x":1}]},"password":"p"}`,
			`{"auth":{"list":[{"api_key":"[redacted]","x":1}],"token":"[redacted]"},"password":"[redacted]","to":"a@example.com"}`, false},
		{"named fields only", ArgumentsConfig{Record: true, Redact: []string{"to"}},
			`{"to":"a@example.com","password":"p"}`, `{"password":"p","to":"[redacted]"}`, false},
		// Go's encoding/json (so the MCP Go SDK's typed tools) reads
		// "PASSWORD" as a password field, and a JavaScript tool names
		// it apiKey: a name is redacted in any case and spelling.
		{"redacted in any case", ArgumentsConfig{Record: true},
			`{"Password":"p1","PASSWORD":"p2","Token":"t","auth":{"TOKEN":"t2"}}`,
			`{"PASSWORD":"[redacted]","Password":"[redacted]","Token":"[redacted]","auth":{"TOKEN":"[redacted]"}}`, false},
		{"redacted with _ or - or neither", ArgumentsConfig{Record: true},
			`{"apiKey":"k1","API-KEY":"k2","accessToken":"a","clientSecret":"c","private-key":"pk","to":"x"}`,
			`{"API-KEY":"[redacted]","accessToken":"[redacted]","apiKey":"[redacted]","clientSecret":"[redacted]","private-key":"[redacted]","to":"x"}`, false},
		{"redacted under Unicode case folding", ArgumentsConfig{Record: true},
			`{"pa\u017f\u017fword":"p","to\u212Aen":"t"}`,
			"{\"pa\u017f\u017fword\":\"[redacted]\",\"to\u212aen\":\"[redacted]\"}", false},
		{"a configured name in any case", ArgumentsConfig{Record: true, Redact: []string{"X_Secret_Code"}},
			`{"xsecretcode":"s","x-secret-code":"s2","password":"p"}`,
			`{"password":"p","x-secret-code":"[redacted]","xsecretcode":"[redacted]"}`, false},
		{"too large: omitted, flagged", ArgumentsConfig{Record: true}, big, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &memStore{}
			w, err := NewWriter(context.Background(), s, WriterConfig{Arguments: tc.cfg})
			if err != nil {
				t.Fatal(err)
			}
			r := chain(t, 1)[0]
			r.Call = &Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "1"}
			r.Call.SetArguments([]byte(tc.args))
			caller := r.Call
			if err := w.Write(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			got := s.rs[0].Call
			digest, _ := ArgumentsDigest([]byte(tc.args))
			if got.ArgumentsDigest != digest || string(got.Arguments) != tc.want || got.ArgumentsOmitted != tc.omitted {
				t.Fatalf("recorded %q (omitted %v, digest %s), want %q (omitted %v, digest %s)",
					got.Arguments, got.ArgumentsOmitted, got.ArgumentsDigest, tc.want, tc.omitted, digest)
			}
			if caller.ArgumentsDigest != "" {
				t.Fatal("the writer changed the caller's Call")
			}
			if err := NewVerifier(GenesisHash).Next(roundTrip(t, &s.rs[0])); err != nil {
				t.Fatalf("the stored record does not verify: %v", err)
			}
		})
	}
}

// TestWriterRedactsArgumentsPoliciesRead: a value a policy read from a
// redacted argument (in the record's context) is recorded as [redacted],
// whether or not the arguments are recorded, and the decision's own
// context is left alone.
func TestWriterRedactsArgumentsPoliciesRead(t *testing.T) {
	for _, record := range []bool{false, true} {
		s := &memStore{}
		w, err := NewWriter(context.Background(), s, WriterConfig{Arguments: ArgumentsConfig{Record: record}})
		if err != nil {
			t.Fatal(err)
		}
		r := chain(t, 1)[0]
		ctx := map[string]any{"arguments.to": "a@example.com", "arguments.auth.token": "t0k", "arguments.password": "p", "header.token": "h",
			// A rule reading an object (arguments.auth: {exists: true})
			// reads the secrets inside it too; another spelling of a name.
			"arguments.auth":          map[string]any{"token": "t0k", "user": "ann", "keys": []any{map[string]any{"apiKey": "k"}}},
			"arguments.Auth.Password": "p2",
		}
		r.Context = ctx
		r.Call = &Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "1"}
		r.Call.SetArguments([]byte(`{"to":"a@example.com","auth":{"token":"t0k"},"password":"p"}`))
		if err := w.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"arguments.to": "a@example.com", "arguments.auth.token": Redacted, "arguments.password": Redacted, "header.token": "h",
			"arguments.auth":          map[string]any{"token": Redacted, "user": "ann", "keys": []any{map[string]any{"apiKey": Redacted}}},
			"arguments.Auth.Password": Redacted,
		}
		if got := s.rs[0].Context; !reflect.DeepEqual(got, want) {
			t.Errorf("record arguments %v: context %v, want %v", record, got, want)
		}
		if ctx["arguments.password"] != "p" || ctx["arguments.auth"].(map[string]any)["token"] != "t0k" {
			t.Errorf("the decision's context was changed: %v", ctx)
		}
		if err := NewVerifier(GenesisHash).Next(roundTrip(t, &s.rs[0])); err != nil {
			t.Fatalf("the stored record does not verify: %v", err)
		}
	}
}

// TestWriterRedactsStatedArguments: POST /v1/check states a call's
// arguments in its context ({"arguments": {...}}), which the record keeps
// without a call: its redacted names are redacted there too.
func TestWriterRedactsStatedArguments(t *testing.T) {
	s := &memStore{}
	w, err := NewWriter(context.Background(), s, WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := chain(t, 1)[0]
	r.Context = map[string]any{"arguments": map[string]any{"to": "a@example.com", "Password": "p"}, "arguments.token": "t", "password": "not an argument"}
	if err := w.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"arguments": map[string]any{"to": "a@example.com", "Password": Redacted}, "arguments.token": Redacted, "password": "not an argument"}
	if got := s.rs[0].Context; !reflect.DeepEqual(got, want) {
		t.Errorf("context %v, want %v", got, want)
	}
	if err := NewVerifier(GenesisHash).Next(roundTrip(t, &s.rs[0])); err != nil {
		t.Fatalf("the stored record does not verify: %v", err)
	}
}

func TestBadArgumentsRefused(t *testing.T) {
	for _, raw := range []string{`[1]`, `null`, `{"a":1} {}`, `{`} {
		r := chain(t, 1)[0]
		r.Call = &Call{Protocol: "mcp", Method: "tools/call", Name: "x"}
		r.Call.SetArguments([]byte(raw))
		if err := r.Seal(GenesisHash); !errors.Is(err, ErrBadArguments) {
			t.Errorf("%s: got %v, want ErrBadArguments", raw, err)
		}
	}
	r := chain(t, 1)[0]
	r.Call = &Call{Protocol: "mcp", Method: "tools/call", Arguments: json.RawMessage(`{"a":`)}
	if err := r.Seal(GenesisHash); !errors.Is(err, ErrBadArguments) {
		t.Errorf("recorded arguments that are not JSON: got %v", err)
	}
}

// TestDigestArgumentsForShipping: an enforcement point that ships its
// records (the wasm filter) digests the arguments itself and lets go of
// them: what it ships carries the digest, never the arguments.
func TestDigestArgumentsForShipping(t *testing.T) {
	const args = `{"to":"a@example.com","password":"p"}`
	c := &Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "1"}
	c.SetArguments([]byte(args))
	if c.HeldBytes() != len(args) {
		t.Fatalf("held %d bytes, want %d", c.HeldBytes(), len(args))
	}
	if err := c.DigestArguments(); err != nil {
		t.Fatal(err)
	}
	want, _ := ArgumentsDigest([]byte(args))
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if c.ArgumentsDigest != want || c.HeldBytes() != 0 || strings.Contains(string(b), "a@example.com") {
		t.Fatalf("shipped %s (held %d), want the digest %s only", b, c.HeldBytes(), want)
	}
}

// BenchmarkArgumentsDigest is what a Writer adds to the record of a 2 KB
// tool call: the digest, and with AUDIT_ARGUMENTS the redacted arguments.
func BenchmarkArgumentsDigest(b *testing.B) {
	raw := []byte(`{"to":"ann@ours.example","subject":"weekly report","options":{"cc":["bob@ours.example"]},"body":"` +
		strings.Repeat("lorem ipsum dolor sit amet ", 68) + `"}`)
	for _, tc := range []struct {
		name string
		ac   ArgumentsConfig
	}{{"digest", ArgumentsConfig{}}, {"digest-and-record", ArgumentsConfig{Record: true}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				c := Call{Protocol: "mcp", Method: "tools/call"}
				c.SetArguments(raw)
				if err := c.finish(tc.ac.Record, tc.ac.redactSet()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestWriterRedactsWhateverTheSpelling: a secret argument is redacted
// however its name is spelt — in another case (a server binding arguments
// with Go's encoding/json reads "Password" as its password field), with the
// Kelvin sign or the long s that encoding/json folds to k and s — and when
// a rule reads an object or a list holding it (arguments.auth, exists: true),
// the recorded context holds the object redacted.
func TestWriterRedactsWhateverTheSpelling(t *testing.T) {
	for _, tc := range []struct {
		name, args string
		ctx, want  map[string]any
	}{
		{"upper case", `{"to":"a@example.com","PASSWORD":"p"}`, nil, nil},
		{"mixed case", `{"to":"a@example.com","Api_Key":"p"}`, nil, nil},
		{"long s", `{"to":"a@example.com","\u017fecret":"p"}`, nil, nil},
		{"kelvin sign", `{"to":"a@example.com","to\u212aen":"p"}`, nil, nil},
		{"nested in a list", `{"to":"a@example.com","hops":[{"Authorization":"p"}]}`, nil, nil},
		{"rule reads a path spelt in another case", `{"to":"a@example.com","auth":{"Token":"p"}}`,
			map[string]any{"arguments.auth.Token": "p"}, map[string]any{"arguments.auth.Token": Redacted}},
		{"rule reads the object holding it", `{"to":"a@example.com","auth":{"token":"p"}}`,
			map[string]any{"arguments.auth": map[string]any{"token": "p", "user": "ann"}},
			map[string]any{"arguments.auth": map[string]any{"token": Redacted, "user": "ann"}}},
		{"rule reads a list holding it", `{"to":"a@example.com","keys":[{"api_key":"p"}]}`,
			map[string]any{"arguments.keys": []any{map[string]any{"API_KEY": "p"}}},
			map[string]any{"arguments.keys": []any{map[string]any{"API_KEY": Redacted}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &memStore{}
			w, err := NewWriter(context.Background(), s, WriterConfig{Arguments: ArgumentsConfig{Record: true}})
			if err != nil {
				t.Fatal(err)
			}
			r := chain(t, 1)[0]
			r.Context = tc.ctx
			r.Call = &Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "1"}
			r.Call.SetArguments([]byte(tc.args))
			if err := w.Write(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			got := s.rs[0]
			if strings.Contains(string(got.Call.Arguments), `"p"`) || !strings.Contains(string(got.Call.Arguments), Redacted) {
				t.Errorf("recorded arguments %s: the secret is in the clear", got.Call.Arguments)
			}
			if !reflect.DeepEqual(got.Context, tc.want) {
				t.Errorf("recorded context %v, want %v", got.Context, tc.want)
			}
			if b, _ := json.Marshal(tc.ctx); strings.Contains(string(b), Redacted) {
				t.Errorf("the decision's context was changed: %s", b)
			}
			if err := NewVerifier(GenesisHash).Next(roundTrip(t, &got)); err != nil {
				t.Fatalf("the stored record does not verify: %v", err)
			}
		})
	}
}

// TestWriterRedactsArgumentsStatedAtCheck: POST /v1/check states a call's
// arguments in its context ({"arguments": {…}}), and its record has no
// Call: their redacted members are redacted all the same, and the record
// verifies.
func TestWriterRedactsArgumentsStatedAtCheck(t *testing.T) {
	s := &memStore{}
	w, err := NewWriter(context.Background(), s, WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := chain(t, 1)[0]
	ctx := map[string]any{"arguments": map[string]any{"to": "a@example.com", "Password": "p", "auth": map[string]any{"token": "t"}},
		"arguments.api_key": "k", "env": "prod"}
	r.Context = ctx
	if err := w.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"arguments": map[string]any{"to": "a@example.com", "Password": Redacted, "auth": map[string]any{"token": Redacted}},
		"arguments.api_key": Redacted, "env": "prod"}
	if got := s.rs[0].Context; !reflect.DeepEqual(got, want) {
		t.Errorf("recorded context %v, want %v", got, want)
	}
	if ctx["arguments.api_key"] != "k" || ctx["arguments"].(map[string]any)["Password"] != "p" {
		t.Errorf("the decision's context was changed: %v", ctx)
	}
	if err := NewVerifier(GenesisHash).Next(roundTrip(t, &s.rs[0])); err != nil {
		t.Fatalf("the stored record does not verify: %v", err)
	}
}
