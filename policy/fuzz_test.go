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

// FuzzParseTests feeds arbitrary bytes to the agents-file and tests-file
// parsers of offline `policy test`: errors must be located ErrInvalid, and
// whatever parses must run.
func FuzzParseTests(f *testing.F) {
	f.Add([]byte(agentsYAML), []byte("tests:\n  - {name: a, agent: emailer, action: 'write:email', chain: [orchestrator], context: {n: 1}, at: '2026-03-02T10:00:00Z', expect: allow, expectReason: rule_allow}"))
	f.Add([]byte("agents: []"), []byte("tests: []"))
	f.Add([]byte("agents: {}"), []byte("- x"))
	s := mustSet(f, meshPolicies...)
	f.Fuzz(func(t *testing.T, agents, tests []byte) {
		dir, err := ParseAgents("agents.yaml", agents)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("agents error is not ErrInvalid: %v", err)
			}
			return
		}
		cases, err := ParseTests("tests.yaml", tests, dir)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("tests error is not ErrInvalid: %v", err)
			}
			return
		}
		rep := RunTests(s, cases, at("2026-03-02T10:00:00Z"), true)
		if rep.Summary.Total != len(cases) || rep.Summary.Passed+rep.Summary.Failed != len(cases) {
			t.Fatalf("summary %+v for %d cases", rep.Summary, len(cases))
		}
	})
}
