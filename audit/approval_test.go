package audit

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestApprovalIsSealed: a record's approval is covered by its hash: it
// survives the store's round trip, and changing it breaks the chain; a
// record without one hashes as before.
func TestApprovalIsSealed(t *testing.T) {
	if h := chain(t, 1)[0].Hash; h != goldenHash {
		t.Fatalf("a record without an approval hashes to %s, not %s as before", h, goldenHash)
	}
	r := chain(t, 1)[0]
	r.Approval = &Approval{ID: "apr_0123", Outcome: "granted"}
	if err := r.Seal(GenesisHash); err != nil {
		t.Fatal(err)
	}
	canon, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(canon, []byte(`"approval":{"id":"apr_0123","outcome":"granted"}`)) {
		t.Fatalf("canonical encoding lacks the approval: %s", canon)
	}
	back := roundTrip(t, &r)
	if err := NewVerifier(GenesisHash).Next(back); err != nil {
		t.Fatalf("a re-read record with an approval no longer verifies: %v", err)
	}
	for _, tamper := range []func(*Record){
		func(r *Record) { r.Approval.Outcome = "requested" },
		func(r *Record) { r.Approval.ID = "apr_9999" },
		func(r *Record) { r.Approval = nil },
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
			t.Fatal("a changed approval still verifies")
		}
	}
}
