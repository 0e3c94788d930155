package policy

import (
	"context"
	"errors"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// FuzzParse feeds arbitrary bytes to the policy parser: it must never panic,
// every error must be an ErrInvalid with a file name, and whatever parses
// must compile and evaluate.
func FuzzParse(f *testing.F) {
	f.Add([]byte(specExample))
	for _, p := range meshPolicies {
		f.Add([]byte(p))
	}
	f.Add([]byte("name: p\nrules:\n  - {effect: allow, actions: ['a:*'], conditions: {time: {between: '22:00-06:00', timezone: Europe/Berlin, days: [mon]}, context: {x: {in: [1, a, null, true]}}, chain: {root: ['*']}, delegated: true}}"))
	f.Add([]byte("a: &a [x]\nb: *a\n---\nname: q"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &list) || len(list) == 0 || list[0].File != "fuzz.yaml" {
				t.Fatalf("error is not a located ErrInvalid: %v", err)
			}
			return
		}
		s, err := Compile(ps)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("compile error is not ErrInvalid: %v", err)
			}
			return
		}
		in := Input{Agent: Subject{ID: "agent_a", Name: "a", Tier: trust.Verified, Active: true}, Action: "a:b",
			Chain: []Subject{{ID: "agent_r", Tier: trust.Trusted, Active: true}}, Context: map[string]any{"x": 1.0}}
		check(t, s, in)
	})
}

// FuzzEvaluate drives one fixed policy set with arbitrary request fields:
// both evaluation paths must agree and nothing may panic.
func FuzzEvaluate(f *testing.F) {
	s := mustSet(f, append([]string{specExample}, meshPolicies...)...)
	f.Add("write:email", "/x", "bob@example.com", uint8(1), "support", 1)
	f.Add("read:contacts", "", "", uint8(2), "emailer", 3)
	f.Add("", "", "", uint8(9), "", 9)
	f.Fuzz(func(t *testing.T, action, resource, recipient string, tier uint8, tag string, chainLen int) {
		in := Input{Agent: Subject{ID: "agent_a", Name: "a", Tier: trust.Tier(tier % 5), Tags: []string{tag}, Active: true},
			Action: action, Resource: resource, Context: map[string]any{"recipient": recipient}}
		for i := range chainLen % 8 {
			in.Chain = append(in.Chain, Subject{ID: "agent_" + string(rune('b'+i)), Tier: trust.Tier(i % 4), Tags: []string{"loose", tag}, Active: i != 6})
		}
		check(t, s, in)
	})
}

func TestLoadContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	writeFile(t, dir+"/a.yaml", "name: a")
	if _, err := Load(ctx, Dir(dir)); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}
