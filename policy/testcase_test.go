package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const agentsYAML = `
agents:
  - {id: agent_orch, name: orchestrator, trustTier: trusted, tags: [orchestrator]}
  - {name: researcher, trustTier: verified, tags: [researcher]}
  - {id: agent_mail, name: emailer, trustTier: verified, tags: [emailer]}
  - {id: agent_old, name: retired, trustTier: verified, tags: [emailer], status: revoked}
`

func TestOfflineTests(t *testing.T) {
	dir, err := ParseAgents("agents.yaml", []byte(agentsYAML))
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := dir.Lookup("researcher"); !ok || a.ID != "researcher" || !a.Active {
		t.Fatalf("id defaults to the name: %+v", a)
	}
	if a, ok := dir.Lookup("agent_old"); !ok || a.Active {
		t.Fatalf("status revoked: %+v", a)
	}
	cases, err := ParseTests("tests.yaml", []byte(`
tests:
  - {name: direct send, agent: emailer, action: "write:email", expect: allow}
  - {name: via chain, agent: agent_mail, action: "write:email", chain: [orchestrator, researcher], expect: allow}
  - {name: too deep, agent: emailer, action: "write:email", chain: [researcher, orchestrator], expect: deny, expectReason: delegation_depth}
  - {name: revoked, agent: retired, action: "write:email", expect: deny, expectReason: agent_revoked}
  - {name: wrong expectation, agent: emailer, action: "admin:x", expect: allow}
  - {name: right effect wrong reason, agent: emailer, action: "admin:x", expect: deny, expectReason: no_policy}
  - agent: emailer
    action: "read:contacts"
    context: {urgent: true, n: 3, who: {a: 1}}
    at: "2026-03-02T10:00:00Z"
    expect: allow
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cases[6].Name != "case-7" || cases[6].Input.Time != at("2026-03-02T10:00:00Z") || cases[6].Input.Context["n"] != 3.0 {
		t.Fatalf("case 7 = %+v", cases[6])
	}
	s := mustSet(t, meshPolicies...)
	r := RunTests(s, cases, time.Time{}, false)
	if r.Summary != (Summary{Total: 7, Passed: 5, Failed: 2}) {
		t.Fatalf("summary %+v\n%+v", r.Summary, r.Results)
	}
	for i, passed := range []bool{true, true, true, true, false, false, true} {
		if r.Results[i].Passed != passed {
			t.Errorf("%s: passed = %v (%s %s)", r.Results[i].Name, r.Results[i].Passed, r.Results[i].Reason, r.Results[i].Message)
		}
	}
}

// TestContextReadsLikeJSON: a case's context holds what the same JSON from
// an SDK would, whatever YAML makes of unquoted scalars.
func TestContextReadsLikeJSON(t *testing.T) {
	dir, err := ParseAgents("agents.yaml", []byte(agentsYAML))
	if err != nil {
		t.Fatal(err)
	}
	cases, err := ParseTests("tests.yaml", []byte("tests:\n  - {agent: emailer, action: a:b, expect: allow, at: 2026-03-02T10:00:00Z, context: {d: 2026-01-01, n: 2, l: [1, x], m: {k: null}}}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cases[0].Input.Context
	if ctx["d"] != "2026-01-01" || ctx["n"] != 2.0 || len(ctx["l"].([]any)) != 2 || ctx["m"].(map[string]any)["k"] != nil {
		t.Fatalf("context %#v", ctx)
	}
	if !cases[0].Input.Time.Equal(at("2026-03-02T10:00:00Z")) {
		t.Fatalf("unquoted at: %v", cases[0].Input.Time)
	}
}

func TestOfflineTestsBadInput(t *testing.T) {
	dir, err := ParseAgents("agents.yaml", []byte(agentsYAML))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, file, want string }{
		{"unknown agent", "tests:\n  - {agent: ghost, action: a:b, expect: allow}", `tests.yaml:2: tests[0].agent: unknown agent "ghost"`},
		{"unknown chain agent", "tests:\n  - {agent: emailer, action: a:b, chain: [ghost], expect: allow}", `tests[0].chain[0]: unknown agent "ghost"`},
		{"bad expect", "tests:\n  - {agent: emailer, action: a:b, expect: yes}", `tests[0].expect: "yes" is not an effect`},
		{"missing expect", "tests:\n  - {agent: emailer, action: a:b}", "tests[0].expect: missing"},
		{"bad time", "tests:\n  - {agent: emailer, action: a:b, expect: allow, at: tomorrow}", "expected an RFC 3339 time"},
		{"unknown key", "tests:\n  - {agent: emailer, action: a:b, expect: allow, expected: deny}", "tests[0].expected: unknown key"},
		{"not a list", "tests: {a: b}", "tests: expected a list of test cases"},
		{"empty file", "", "empty file"},
		{"no cases", "tests: []", "no test cases"},
		{"duplicate names", "tests:\n  - {name: a, agent: emailer, action: a:b, expect: allow}\n  - {name: a, agent: emailer, action: a:c, expect: allow}", `tests[1].name: duplicate test name "a"`},
		{"alias", "tests:\n  - &c {name: a, agent: emailer, action: a:b, expect: allow}\n  - *c", "YAML aliases"},
		{"at of the wrong type", "tests:\n  - {agent: emailer, action: a:b, expect: allow, at: 5}", "expected an RFC 3339 time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTests("tests.yaml", []byte(tc.file), dir)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	for _, bad := range []struct{ file, want string }{
		{"agents:\n  - {name: a, trustTier: root}", `agents[0].trustTier: unknown trust tier "root"`},
		{"agents:\n  - {name: a}", "agents[0].trustTier: missing"},
		{"agents:\n  - {trustTier: verified}", "needs an id or a name"},
		{"agents:\n  - {name: a, trustTier: verified, status: paused}", `"paused": expected active or revoked`},
		{"agents:\n  - {name: a, trustTier: verified}\n  - {name: a, trustTier: trusted}", `agent "a" is defined twice`},
		{"agents:\n  - {name: a, trustTier: verified, colour: red}", "agents[0].colour: unknown key"},
	} {
		if _, err := ParseAgents("agents.yaml", []byte(bad.file)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("agents file %q: got %v, want %q", bad.file, err, bad.want)
		}
	}
}
