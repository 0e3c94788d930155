package approval

import (
	"errors"
	"testing"
	"time"
)

// TestBindingDigest: the digest is stable (a map's key order does not
// matter), and every field of the binding changes it.
func TestBindingDigest(t *testing.T) {
	base := Binding{AgentID: "agent_a", Chain: []string{"agent_o", "agent_a"}, Action: "write:email", Resource: "/out",
		ArgumentsDigest: "ab", Context: map[string]any{"to": "a@example.com", "n": 1.0}}
	d0, err := base.Digest()
	if err != nil || len(d0) != 64 {
		t.Fatalf("Digest = %q, %v", d0, err)
	}
	same := base
	same.Context = map[string]any{"n": 1.0, "to": "a@example.com"}
	if d, _ := same.Digest(); d != d0 {
		t.Fatal("the same binding digests differently")
	}
	for _, tc := range []struct {
		name string
		mod  func(*Binding)
	}{
		{"agent", func(b *Binding) { b.AgentID = "agent_b" }},
		{"chain", func(b *Binding) { b.Chain = []string{"agent_a"} }},
		{"action", func(b *Binding) { b.Action = "write:sms" }},
		{"resource", func(b *Binding) { b.Resource = "/other" }},
		{"arguments", func(b *Binding) { b.ArgumentsDigest = "cd" }},
		{"params", func(b *Binding) { b.ParamsDigest = "ef" }},
		{"query", func(b *Binding) { b.Query = "to=eve@evil.example" }},
		{"context", func(b *Binding) { b.Context = map[string]any{"to": "eve@evil.example", "n": 1.0} }},
		// Fields cannot run into each other.
		{"shifted text", func(b *Binding) { b.Action, b.Resource = "write:email/", "out" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := base
			tc.mod(&b)
			if d, err := b.Digest(); err != nil || d == d0 {
				t.Fatalf("changing the %s left the digest %s (%v)", tc.name, d, err)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	now := time.Now()
	a, b := NewID(now), NewID(now)
	if a == b || !ValidID(a) || !ValidID(b) {
		t.Fatalf("ids %s, %s", a, b)
	}
	if later := NewID(now.Add(time.Millisecond)); later <= a {
		t.Fatalf("ids do not sort by time: %s then %s", a, later)
	}
	for _, bad := range []string{"", "apr_", "apr_x", a[:len(a)-1], a + "0", "apx_" + a[4:], "apr_" + "G" + a[5:]} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	f := Filter{}
	if err := f.Validate(); err != nil || f.Limit != DefaultList {
		t.Fatalf("empty filter: %v, limit %d", err, f.Limit)
	}
	for _, bad := range []Filter{{Limit: MaxList + 1}, {Limit: -1}, {Status: "maybe"}, {Before: "apr_1"}} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}
