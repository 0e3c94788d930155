package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/trust"
)

// shadowTestPolicies: shadowtest agents may send and read; the shadow
// policy would deny mail outside example.com and allow archiving.
const shadowTestPolicies = `
name: shadowtest-mail
appliesTo: {tags: [shadowtest]}
rules:
  - {name: send, effect: allow, actions: ["send:*", "read:*"]}
---
name: shadowtest-strict
mode: shadow
appliesTo: {tags: [shadowtest]}
rules:
  - {name: no-outside, effect: deny, actions: ["send:*"], conditions: {context: {to: {not_matches: "*@example.com"}}}}
  - {name: archive, effect: allow, actions: ["archive:*"]}
  - {name: reads, effect: allow, actions: ["read:*"]}
`

// TestPolicyShadow: a trail recorded by the real engine, with shadow
// answers, is reported the same through the server (the admin API's
// export) and from the store (--data-dir): grouped by shadow policy, rule
// and direction, with counts and the recorded examples.
func TestPolicyShadow(t *testing.T) {
	l := newLive(t)
	if err := os.WriteFile(filepath.Join(l.dir, "shadowtest.yaml"), []byte(shadowTestPolicies), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.f.Policies.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	ag, tok := l.f.Agent(t, "shadowtest-agent", trust.Verified, []string{"shadowtest"})
	check := func(action, to string) engine.Decision {
		t.Helper()
		r := engine.Request{Source: engine.SourceAPI, Token: tok, Action: action, Resource: "/" + action}
		if to != "" {
			r.Context = map[string]any{"to": to}
		}
		d, err := l.f.Engine.Check(context.Background(), &r)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	var outside, archive []engine.Decision
	for range 4 {
		outside = append(outside, check("send:mail", "eve@evil.example"))
	}
	check("send:mail", "bob@example.com") // agrees
	check("read:x", "")                   // agrees
	archive = append(archive, check("archive:x", ""), check("archive:y", ""))
	if outside[0].Status != 200 || archive[0].Status != 403 {
		t.Fatalf("the shadow policy changed a decision: %d %s, %d %s", outside[0].Status, outside[0].Reason, archive[0].Status, archive[0].Reason)
	}

	example := func(d engine.Decision, action string) audit.ShadowExample {
		return audit.ShadowExample{ID: "aud_" + d.ID[len("dec_"):], TraceID: d.TraceID, Time: d.Time.UTC(), Agent: ag.Name, Action: action, Resource: "/" + action}
	}
	want := []*audit.ShadowGroup{
		{Policy: "shadowtest-strict", Rule: "no-outside", Enforced: "allow", Shadow: "deny", Reason: "rule_deny", Count: 4,
			Examples: []audit.ShadowExample{example(outside[0], "send:mail"), example(outside[1], "send:mail")}},
		{Policy: "shadowtest-strict", Rule: "archive", Enforced: "deny", Shadow: "allow", Reason: "rule_allow", Count: 2,
			Examples: []audit.ShadowExample{example(archive[0], "archive:x"), example(archive[1], "archive:y")}},
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"online", nil},
		{"offline", []string{"--data-dir", l.f.Dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"policy", "shadow", "--since", "1h", "--examples", "2", "--json"}, tc.args...)
			rep := decodeJSON[audit.ShadowReport](t, l.must(t, args...))
			if rep.Records != 6 {
				t.Fatalf("%d records, want 6", rep.Records)
			}
			if diff := cmp.Diff(want, rep.Groups, cmp.AllowUnexported(audit.ShadowGroup{})); diff != "" {
				t.Fatalf("groups (-want +got):\n%s", diff)
			}
			// One policy's: the same; another's: none.
			rep = decodeJSON[audit.ShadowReport](t, l.must(t, append(args, "--policy", "shadowtest-strict")...))
			if rep.Records != 6 {
				t.Fatalf("--policy shadowtest-strict: %d records, want 6", rep.Records)
			}
			rep = decodeJSON[audit.ShadowReport](t, l.must(t, append(args, "--policy", "other")...))
			if rep.Records != 0 || len(rep.Groups) != 0 {
				t.Fatalf("--policy other: %+v", rep)
			}
			// A window before the trail holds nothing.
			rep = decodeJSON[audit.ShadowReport](t, l.must(t, "policy", "shadow", "--since", "2026-01-01", "--until", "2026-01-02", "--json"))
			if rep.Records != 0 {
				t.Fatalf("an empty window: %+v", rep)
			}
			out := l.must(t, append([]string{"policy", "shadow", "--since", "1h"}, tc.args...)...)
			for _, line := range []string{
				"shadow policies disagreed on 6 records",
				"allow→deny  shadowtest-strict/no-outside  rule_deny  4 records",
				"deny→allow  shadowtest-strict/archive  rule_allow  2 records",
				"    " + want[0].Examples[0].ID + "  trace " + want[0].Examples[0].TraceID + "  shadowtest-agent  send:mail  /send:mail",
			} {
				if !strings.Contains(out, line) {
					t.Errorf("the report lacks %q:\n%s", line, out)
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"both stores", []string{"--data-dir", l.f.Dir, "--database-url", "postgres://x"}},
		{"no examples", []string{"--examples", "0"}},
		{"too many examples", []string{"--examples", "21"}},
		{"since after until", []string{"--since", "2026-03-03", "--until", "2026-03-02"}},
		{"a bad time", []string{"--since", "yesterday"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, _ := l.mg(t, append([]string{"policy", "shadow"}, tc.args...)...); code != ExitUsage {
				t.Fatalf("exit %d, want %d", code, ExitUsage)
			}
		})
	}
}

// TestPolicyShadowValidateAndTest: validate names a shadow policy as one;
// policy test decides with shadow policies enforcing, in test cases and
// for one request.
func TestPolicyShadowValidateAndTest(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(shadowTestPolicies), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "policy", "validate", dir)
	if code != 0 || !strings.Contains(out, "✓ shadowtest-strict ("+filepath.Join(dir, "p.yaml")+":7, 3 rules, shadow)\n") ||
		!strings.Contains(out, "✓ shadowtest-mail ("+filepath.Join(dir, "p.yaml")+":2, 1 rule)\n") {
		t.Fatalf("validate: exit %d %s\n%s", code, errOut, out)
	}
	bad := writeTemp(t, "bad.yaml", "name: p\nmode: dry-run\n")
	if code, _, errOut := run(t, "policy", "validate", bad); code != ExitUsage || !strings.Contains(errOut, `mode: "dry-run" is not a mode (expected enforce or shadow)`) {
		t.Fatalf("validate of a bad mode: exit %d %s", code, errOut)
	}
	agents := writeTemp(t, "agents.yaml", "agents:\n  - {id: agent_s, name: s, trustTier: verified, tags: [shadowtest]}\n")
	cases := writeTemp(t, "tests.yaml", `tests:
  - {name: outside mail, agent: s, action: "send:mail", context: {to: eve@evil.example}, expect: deny, expectReason: rule_deny}
  - {name: archive, agent: s, action: "archive:x", expect: allow}
`)
	if code, out, errOut := run(t, "policy", "test", "--policies", dir, "--agents", agents, "--file", cases); code != 0 {
		t.Fatalf("test cases: exit %d %s\n%s", code, errOut, out)
	}
	code, out, _ = run(t, "policy", "test", "--policies", dir, "--agents", agents, "--agent", "s", "--action", "archive:x", "--json")
	if code != 0 || !strings.Contains(out, `"policy": "shadowtest-strict"`) {
		t.Fatalf("one request: exit %d\n%s", code, out)
	}
}
