package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzCanonicalRoundTrip: whatever strings a record holds, its canonical
// encoding is JSON that says exactly what the record says (each string as
// the decoder reads it: invalid UTF-8 as U+FFFD), a store that keeps it
// gives back a record that verifies and encodes to the same bytes, and an
// edit of any of those strings — or strings moved from one field to
// another — breaks the chain.
func FuzzCanonicalRoundTrip(f *testing.F) {
	f.Add("emailer", "/a\xff", "r\"\\", "k", "v")
	f.Add("", "", "", "", "")
	f.Add("a\u2028b", "/x\x00y", "</script>&", "\xed\xa0\x80", "\ufffd")
	f.Fuzz(func(t *testing.T, name, path, reason, key, value string) {
		r := chain(t, 1)[0]
		r.AgentName, r.Path, r.Reason = name, path, reason
		r.Chain = []string{name, path}
		r.Context = map[string]any{key: value}
		r.Inputs = &Inputs{Tags: []string{key}, Chain: []ChainMember{{Name: name, Tier: value}}, Absent: []string{path}}
		if err := r.Seal(GenesisHash); err != nil {
			t.Fatal(err)
		}
		body, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		back := roundTrip(t, &r)
		if err := NewVerifier(GenesisHash).Next(back); err != nil {
			t.Fatalf("a stored record no longer verifies: %v", err)
		}
		again, err := appendCanonical(nil, back)
		if err != nil || !bytes.Equal(again, body) {
			t.Fatalf("a stored record encodes differently (%v):\n%s\n%s", err, body, again)
		}
		// The encoding says what the record says.
		want := map[string]string{"agentName": read(t, name), "path": read(t, path), "reason": read(t, reason)}
		for field, v := range want {
			var got map[string]any
			_ = json.Unmarshal(body, &got)
			if got[field] != v {
				t.Fatalf("%s: the encoding says %q, the record %q", field, got[field], v)
			}
		}
		if got := back.Context[read(t, key)]; got != read(t, value) || len(back.Context) != 1 || len(back.Chain) != 2 ||
			back.Chain[0] != read(t, name) || back.Chain[1] != read(t, path) {
			t.Fatalf("the context or chain changed: %v %v", back.Context, back.Chain)
		}
		if in := back.Inputs; in == nil || len(in.Tags) != 1 || in.Tags[0] != read(t, key) || len(in.Chain) != 1 ||
			in.Chain[0].Name != read(t, name) || in.Chain[0].Tier != read(t, value) || len(in.Absent) != 1 || in.Absent[0] != read(t, path) {
			t.Fatalf("the inputs changed: %+v", back.Inputs)
		}

		// Edits break the chain.
		edits := map[string]func(*Record){
			"agentName": func(r *Record) { r.AgentName += "x" },
			"path":      func(r *Record) { r.Path = "x" + r.Path },
			"reason":    func(r *Record) { r.Reason += "\x00" },
			"chain":     func(r *Record) { r.Chain = []string{r.Chain[0] + r.Chain[1]} },
			"context":   func(r *Record) { r.Context = map[string]any{read(t, key): read(t, value) + "x"} },
			"inputs":    func(r *Record) { r.Inputs.Chain[0].Tier += "x" },
		}
		if read(t, name) != read(t, path) {
			edits["agentName and path swapped"] = func(r *Record) { r.AgentName, r.Path = r.Path, r.AgentName }
		}
		if read(t, key) != read(t, value) {
			edits["context key and value swapped"] = func(r *Record) { r.Context = map[string]any{read(t, value): read(t, key)} }
		}
		for what, edit := range edits {
			forged := roundTrip(t, &r)
			edit(forged)
			if err := NewVerifier(GenesisHash).Next(forged); !errors.Is(err, ErrBroken) {
				t.Fatalf("%s edited, the record still verifies (%v)", what, err)
			}
		}
	})
}

// read is s as a store gives it back: what encoding/json decodes s to.
func read(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
