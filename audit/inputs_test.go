package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestRecordWithoutInputsKeepsItsHash: a record sealed before inputs
// existed (and every record refused before policy) encodes as it always
// did, so the trails already stored still verify. The hash was computed
// before the field was added.
func TestRecordWithoutInputsKeepsItsHash(t *testing.T) {
	const before = "9b861729644ea3c849f3d92af2bcea75a83e6a847a62413350671051a95f48f3"
	r := chain(t, 1)[0]
	if r.Hash != before {
		t.Fatalf("a record without inputs hashes to %s, sealed before inputs existed it hashed to %s", r.Hash, before)
	}
	body, _ := r.Canonical()
	if bytes.Contains(body, []byte(`"inputs"`)) {
		t.Fatalf("a record without inputs encodes them: %s", body)
	}
}

// TestInputsRoundTrip: whatever inputs a record holds, a store that keeps
// its canonical encoding gives back a record that verifies, encodes to the
// same bytes and holds the same inputs; the canonical encoding of the
// inputs is what encoding/json reads as them.
func TestInputsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Inputs
	}{
		{"empty: a policy decision with nothing else to hold", Inputs{}},
		{"tags", Inputs{Tags: []string{"mail", "<pii>&\"x\""}}},
		{"revoked actor", Inputs{Revoked: true}},
		{"chain", Inputs{Chain: []ChainMember{{Name: "orch", Tier: "trusted", Tags: []string{"planner"}}, {Revoked: true}}}},
		{"scope", Inputs{Scope: []string{"read:*", "write:email"}}},
		{"absent", Inputs{Absent: []string{"header.x-env", "arguments.to"}}},
		{"after policy", Inputs{AfterPolicy: true}},
		{"all", Inputs{Tags: []string{"a"}, Revoked: true, Chain: []ChainMember{{Name: "n\u2028", Tier: "verified"}},
			Scope: []string{"x:y"}, Absent: []string{"query.q"}, AfterPolicy: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := chain(t, 1)[0]
			in := tc.in
			r.Inputs = &in
			if err := r.Seal(GenesisHash); err != nil {
				t.Fatal(err)
			}
			body, _ := r.Canonical()
			back := roundTrip(t, &r)
			if err := NewVerifier(GenesisHash).Next(back); err != nil {
				t.Fatalf("a stored record with inputs no longer verifies: %v\n%s", err, body)
			}
			if back.Inputs == nil {
				t.Fatalf("the inputs were lost: %s", body)
			}
			again, err := appendCanonical(nil, back)
			if err != nil || !bytes.Equal(again, body) {
				t.Fatalf("a stored record encodes differently (%v):\n%s\n%s", err, body, again)
			}
			want, _ := json.Marshal(&in)
			got, _ := json.Marshal(back.Inputs)
			if !bytes.Equal(got, want) {
				t.Fatalf("inputs read back:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestInputsAreChained: an edit of any input breaks the chain, as an
// edit of any other field does.
func TestInputsAreChained(t *testing.T) {
	edits := map[string]func(*Inputs){
		"tag added":           func(in *Inputs) { in.Tags = append(in.Tags, "admin") },
		"tag dropped":         func(in *Inputs) { in.Tags = nil },
		"actor un-revoked":    func(in *Inputs) { in.Revoked = false },
		"member tier raised":  func(in *Inputs) { in.Chain[0].Tier = "privileged" },
		"member renamed":      func(in *Inputs) { in.Chain[0].Name = "root" },
		"member un-revoked":   func(in *Inputs) { in.Chain[0].Revoked = false },
		"scope widened":       func(in *Inputs) { in.Scope = []string{"*"} },
		"absent key dropped":  func(in *Inputs) { in.Absent = nil },
		"after policy erased": func(in *Inputs) { in.AfterPolicy = false },
		"inputs removed":      nil,
	}
	r := chain(t, 1)[0]
	r.Inputs = &Inputs{Tags: []string{"mail"}, Revoked: true, Chain: []ChainMember{{Name: "orch", Tier: "trusted", Revoked: true}},
		Scope: []string{"write:*"}, Absent: []string{"header.x-env"}, AfterPolicy: true}
	if err := r.Seal(GenesisHash); err != nil {
		t.Fatal(err)
	}
	for what, edit := range edits {
		t.Run(what, func(t *testing.T) {
			forged := roundTrip(t, &r)
			if edit == nil {
				forged.Inputs = nil
			} else {
				edit(forged.Inputs)
			}
			if err := NewVerifier(GenesisHash).Next(forged); !errors.Is(err, ErrBroken) {
				t.Fatalf("%s, the record still verifies (%v)", what, err)
			}
		})
	}
}

// TestInputsEncodingIsJSON: the hand-written encoding is the one
// encoding/json reads, field for field (no key it would drop).
func TestInputsEncodingIsJSON(t *testing.T) {
	in := Inputs{Tags: []string{"a"}, Revoked: true, Chain: []ChainMember{{Name: "n", Tier: "t", Tags: []string{"g"}, Revoked: true}},
		Scope: []string{"s"}, Absent: []string{"k"}, AfterPolicy: true}
	b := appendInputs(nil, &in)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var back Inputs
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want, _ := json.Marshal(&in)
	if got, _ := json.Marshal(&back); !bytes.Equal(got, want) || strings.Count(string(b), ":") != strings.Count(string(want), ":") {
		t.Fatalf("encoded %s, read back %s, want %s", b, got, want)
	}
}
