package audit

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestShadowIsSealed: a record's shadow answer is covered by its hash: it
// survives the store's round trip, and changing any of its fields breaks
// the chain; a record without one hashes as before.
func TestShadowIsSealed(t *testing.T) {
	if h := chain(t, 1)[0].Hash; h != goldenHash {
		t.Fatalf("a record without a shadow answer hashes to %s, not %s as before", h, goldenHash)
	}
	r := chain(t, 1)[0]
	r.Shadow = &Shadow{Decision: "deny", Reason: "rule_deny", Policy: "strict", Rule: "no-outside"}
	if err := r.Seal(GenesisHash); err != nil {
		t.Fatal(err)
	}
	canon, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(canon, []byte(`"shadow":{"decision":"deny","reason":"rule_deny","policy":"strict","rule":"no-outside"}`)) {
		t.Fatalf("canonical encoding lacks the shadow answer: %s", canon)
	}
	back := roundTrip(t, &r)
	if err := NewVerifier(GenesisHash).Next(back); err != nil {
		t.Fatalf("a re-read record with a shadow answer no longer verifies: %v", err)
	}
	for name, tamper := range map[string]func(*Record){
		"decision": func(r *Record) { r.Shadow.Decision = "allow" },
		"reason":   func(r *Record) { r.Shadow.Reason = "rule_allow" },
		"policy":   func(r *Record) { r.Shadow.Policy = "other" },
		"rule":     func(r *Record) { r.Shadow.Rule = "" },
		"removed":  func(r *Record) { r.Shadow = nil },
	} {
		js, err := json.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		var bad Record
		if err := json.Unmarshal(js, &bad); err != nil {
			t.Fatal(err)
		}
		tamper(&bad)
		if err := NewVerifier(GenesisHash).Next(&bad); err == nil {
			t.Fatalf("a record whose shadow %s changed still verifies", name)
		}
	}
}
