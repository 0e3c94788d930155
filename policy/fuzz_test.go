package policy

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// FuzzParse feeds arbitrary bytes to the policy parser: it must never panic,
// every error must be an ErrInvalid with a file name, and whatever parses
// must compile, decide as docs/policies.md says its reasons mean
// (checkDecision), and survive the JSON round trip the wasm filter's
// configuration takes: parsed back, the same policies, deciding every probe
// request alike (checkJSONRoundTrip); and its shadow policies never change
// a decision (checkShadowInvisible).
func FuzzParse(f *testing.F) {
	f.Add([]byte(specExample))
	for _, p := range meshPolicies {
		f.Add([]byte(p))
	}
	f.Add([]byte("name: p\nrules:\n  - {effect: allow, actions: ['a:*'], conditions: {time: {between: '22:00-06:00', timezone: Europe/Berlin, days: [mon]}, context: {x: {in: [1, a, null, true]}}, chain: {root: ['*']}, delegated: true}}"))
	f.Add([]byte("a: &a [x]\nb: *a\n---\nname: q"))
	f.Add([]byte("name: p\nrules: [{effect: allow, actions: ['a:*']}]\n---\nname: s\nmode: shadow\ndefaultEffect: allow\nrules: [{effect: deny, actions: ['a:b']}, {effect: approve, actions: ['read:*']}]"))
	f.Add([]byte("name: p\nrules:\n  - {effect: approve, actions: ['a:*'], approvers: [security, ops.leads], ttl: 90m, conditions: {context: {x: {matches: 'b*'}}, rateLimit: {requestsPerMinute: 5}}}\n  - {effect: allow, actions: ['*']}\ndefaultEffect: allow"))
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
		d := check(t, s, in)
		checkDecision(t, s, &in, d)
		if !slices.ContainsFunc(ps, readsDelegation) {
			checkDelegationOnlyNarrows(t, s, in, d)
		}
		checkJSONRoundTrip(t, ps, s)
		checkShadowInvisible(t, ps, s)
	})
}

// FuzzEvaluate drives one fixed policy set with arbitrary request fields:
// both evaluation paths agree, every decision means what its reason says
// (checkDecision), delegation only narrows what the actor may do alone
// (checkDelegationOnlyNarrows), and a revoked actor is always refused.
func FuzzEvaluate(f *testing.F) {
	s := mustSet(f, append([]string{specExample}, meshPolicies...)...)
	if slices.ContainsFunc(s.Policies(), readsDelegation) {
		f.Fatal("checkDelegationOnlyNarrows needs a set whose rules do not read the chain")
	}
	f.Add("write:email", "/x", "bob@example.com", uint8(1), "support", 1)
	f.Add("read:contacts", "", "", uint8(2), "emailer", 3)
	f.Add("", "", "", uint8(9), "", 9)
	f.Fuzz(func(t *testing.T, action, resource, recipient string, tier uint8, tag string, chainLen int) {
		in := Input{Agent: Subject{ID: "agent_a", Name: "a", Tier: trust.Tier(tier % 5), Tags: []string{tag}, Active: true},
			Action: action, Resource: resource, Context: map[string]any{"recipient": recipient}}
		for i := range chainLen % 8 {
			// Tiers rotate with the fuzzed tier, so chains of trusted
			// members (which reach the delegation checks) occur as well as
			// chains with an untrusted one.
			in.Chain = append(in.Chain, Subject{ID: "agent_" + string(rune('b'+i)), Tier: trust.Tier((i + 1 + int(tier)) % 4), Tags: []string{"loose", tag}, Active: i != 6})
		}
		d := check(t, s, in)
		checkDecision(t, s, &in, d)
		checkDelegationOnlyNarrows(t, s, in, d)
		revoked := in
		revoked.Agent.Active = false
		checkDecision(t, s, &revoked, check(t, s, revoked))
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
// whatever parses must run, each result reporting the decision Evaluate
// gives for its case and passing exactly when that decision is the one
// expected.
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
		now := at("2026-03-02T10:00:00Z")
		rep := RunTests(s, cases, now, true)
		passed := 0
		for i, c := range cases {
			in := c.Input
			if in.Time.IsZero() {
				in.Time = now
			}
			want := check(t, s, in)
			checkDecision(t, s, &in, want)
			r := rep.Results[i]
			if r.Name != c.Name || r.Decision != want.Effect || r.Reason != want.Reason || r.Policy != want.Policy ||
				r.Rule != want.Rule || r.Expected != c.Expect || r.ExpectedReason != c.Reason {
				t.Fatalf("case %q: result %+v, but Evaluate gives %s/%s policy=%q rule=%q", c.Name, r, want.Effect, want.Reason, want.Policy, want.Rule)
			}
			if ok := want.Effect == c.Expect && (c.Reason == "" || c.Reason == want.Reason); r.Passed != ok {
				t.Fatalf("case %q: passed = %v for %s/%s, expecting %s %q", c.Name, r.Passed, want.Effect, want.Reason, c.Expect, c.Reason)
			}
			if r.Passed {
				passed++
			}
		}
		if len(rep.Results) != len(cases) || rep.Summary != (Summary{Total: len(cases), Passed: passed, Failed: len(cases) - passed}) {
			t.Fatalf("summary %+v for %d cases, %d passed", rep.Summary, len(cases), passed)
		}
	})
}
