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
	if cases[6].Name != "case-7" || cases[6].Input.Time != at("2026-03-02T10:00:00Z") || cases[6].Input.Context["n"] != 3 {
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
