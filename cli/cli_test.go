package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	examplePolicies = "../examples/policies"
	exampleAgents   = "../examples/agents.yaml"
	exampleTests    = "../examples/tests.yaml"
)

// run executes the CLI in-process and returns exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, Options{Version: "v0.0.0-test", Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVersion: `meshguard version`, --version and -v name the version,
// commit and date the build was stamped with (one line), and --json gives
// them as fields; a build with no stamps says "unknown", never nothing.
func TestVersion(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name       string
		opts       Options
		wantText   string
		wantFields map[string]string
	}{
		{
			name:       "stamped",
			opts:       Options{Version: "v1.2.3", Commit: commit, Date: "2026-05-01T10:20:30Z"},
			wantText:   "meshguard v1.2.3 (commit " + commit + ", 2026-05-01T10:20:30Z)\n",
			wantFields: map[string]string{"version": "v1.2.3", "commit": commit, "date": "2026-05-01T10:20:30Z"},
		},
		{
			name:       "unstamped",
			opts:       Options{Version: "dev"},
			wantText:   "meshguard dev (commit unknown, unknown)\n",
			wantFields: map[string]string{"version": "dev", "commit": "unknown", "date": "unknown"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runOpts := func(args ...string) (int, string) {
				var out, errb bytes.Buffer
				o := tt.opts
				o.Stdout, o.Stderr = &out, &errb
				code := Main(context.Background(), args, o)
				return code, out.String() + errb.String()
			}
			for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
				if code, out := runOpts(args...); code != 0 || out != tt.wantText {
					t.Errorf("%v: exit %d, printed %q, want %q", args, code, out, tt.wantText)
				}
			}
			code, out := runOpts("version", "--json")
			var got map[string]string
			if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
				t.Fatalf("version --json: exit %d, %q", code, out)
			}
			if diff := cmp.Diff(tt.wantFields, got); diff != "" {
				t.Errorf("version --json (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"policy", "validate", "--frob", "x"}, "unknown flag: --frob"},
		{"validate needs a path", []string{"policy", "validate"}, "accepts 1 arg(s)"},
		{"validate missing path", []string{"policy", "validate", "/nonexistent/p.yaml"}, "no such file"},
		{"--agents needs --policies", []string{"policy", "test", "--agents", exampleAgents, "--agent", "a", "--action", "b:c"}, "give --policies too"},
		{"test needs --agents", []string{"policy", "test", "--policies", examplePolicies, "--file", exampleTests}, "--agents is required"},
		{"test needs a mode", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents}, "give --file"},
		{"test not both modes", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--file", exampleTests, "--agent", "x"}, "not both"},
		{"test one needs action", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--agent", "researcher"}, "both --agent and --action"},
		{"unknown agent", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--agent", "ghost", "--action", "read:x"}, `unknown agent "ghost"`},
		{"unknown chain agent", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--agent", "researcher", "--action", "read:x", "--chain", "ghost"}, `--chain: unknown agent "ghost"`},
		{"context not JSON", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--agent", "researcher", "--action", "read:x", "--context", "{nope"}, "--context: expected a JSON object"},
		{"context not an object", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--agent", "researcher", "--action", "read:x", "--context", "[1]"}, "--context: expected a JSON object"},
		{"bad --at", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--agent", "researcher", "--action", "read:x", "--at", "noon"}, "--at"},
		{"unknown policy subcommand", []string{"policy", "valdate", examplePolicies}, `unknown command "valdate" for "meshguard policy"`},
		{"context null", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--agent", "researcher", "--action", "read:x", "--context", "null"}, "--context: expected a JSON object"},
		{"validate an empty directory", []string{"policy", "validate", "testdata"}, "no policies found"},
		{"missing tests file", []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--file", "/nonexistent.yaml"}, "--file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, errOut, tc.want)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	code, out, errOut := run(t, "policy", "validate", examplePolicies)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	golden(t, "validate-examples.golden", out)

	bad := writeTemp(t, "bad.yaml", "name: p\nrules:\n  - name: r\n    effect: alow\n    actions: [read]\n---\nname: q\nappliesTo: {trustTiers: [admin]}\n")
	code, out, errOut = run(t, "policy", "validate", bad)
	if code != ExitUsage || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		bad + `:4: rules[0].effect: "alow" is not an effect (expected allow, deny or approve)`,
		bad + `:5: rules[0].actions[0]: "read": expected an action verb:resource`,
		bad + `:8: appliesTo.trustTiers[0]: unknown tier "admin"`,
		"3 errors",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	code, out, _ = run(t, "policy", "validate", bad, "--json")
	var rep validateReport
	if code != ExitUsage || json.Unmarshal([]byte(out), &rep) != nil || rep.Valid || len(rep.Errors) != 3 || rep.Errors[0].Line != 4 || rep.Errors[0].Field != "rules[0].effect" {
		t.Fatalf("--json: exit %d %+v\n%s", code, rep, out)
	}
}

func TestPolicyTestFile(t *testing.T) {
	code, out, errOut := run(t, "policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--file", exampleTests)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
	}
	golden(t, "test-examples.golden", out)

	failing := writeTemp(t, "tests.yaml", `tests:
  - {name: reads, agent: researcher, action: "read:papers", expect: allow}
  - {name: wrongly hopeful, agent: researcher, action: "delete:papers", expect: allow}
  - {name: wrong reason, agent: researcher, action: "delete:papers", expect: deny, expectReason: rule_deny}
`)
	code, out, _ = run(t, "policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--file", failing)
	want := "✓ reads PASS (allowed)\n" +
		"✗ wrongly hopeful FAIL (expected: allow, got: deny)\n" +
		"✗ wrong reason FAIL (expected: deny/rule_deny, got: deny/no_matching_rule)\n" +
		"Results: 1 passed, 2 failed\n"
	if code != ExitFailure || out != want {
		t.Fatalf("exit %d\n%s\nwant\n%s", code, out, want)
	}

	oneFailure := writeTemp(t, "one.yaml", "tests:\n  - {name: only, agent: researcher, action: \"delete:papers\", expect: allow}\n")
	if code, _, _ := run(t, "policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--file", oneFailure); code != ExitFailure {
		t.Fatalf("one failed case: exit %d, want 1", code)
	}

	code, out, _ = run(t, "policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--file", failing, "--json")
	var rep map[string]any
	if code != ExitFailure || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("--json: exit %d %s", code, out)
	}
	if diff := cmp.Diff(map[string]any{"total": 3.0, "passed": 1.0, "failed": 2.0}, rep["summary"]); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	// Every key of the documented --json shape is present even when empty (the
	// second case is denied by a default, with no rule).
	for _, r := range rep["results"].([]any) {
		res := r.(map[string]any)
		for _, key := range []string{"name", "passed", "decision", "expected", "policy", "rule", "reason"} {
			if _, ok := res[key]; !ok {
				t.Errorf("result lacks %q: %v", key, res)
			}
		}
	}

	code, out, _ = run(t, "policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--file", failing, "--quiet")
	if code != ExitFailure || out != "" {
		t.Fatalf("--quiet: exit %d, stdout %q", code, out)
	}

	badTests := writeTemp(t, "tests.yaml", "tests:\n  - {agent: ghost, action: a:b, expect: allow}\n")
	code, _, errOut = run(t, "policy", "test", "--policies", examplePolicies, "--agents", exampleAgents, "--file", badTests)
	if code != ExitUsage || !strings.Contains(errOut, `tests.yaml:2: tests[0].agent: unknown agent "ghost"`) {
		t.Fatalf("bad tests file: exit %d, stderr %q", code, errOut)
	}
	badPolicies := filepath.Dir(writeTemp(t, "p.yaml", "name: p\nrules: {}\n"))
	code, _, errOut = run(t, "policy", "test", "--policies", badPolicies, "--agents", exampleAgents, "--file", exampleTests)
	if code != ExitUsage || !strings.Contains(errOut, "p.yaml:2: rules: expected a list of rules") {
		t.Fatalf("bad policies: exit %d, stderr %q", code, errOut)
	}
}

func TestPolicyTestOne(t *testing.T) {
	base := []string{"policy", "test", "--policies", examplePolicies, "--agents", exampleAgents}
	code, out, _ := run(t, append(base, "--agent", "researcher", "--action", "write:notes/x", "--chain", "orchestrator", "--verbose")...)
	if code != ExitFailure {
		t.Fatalf("denied request: exit %d", code)
	}
	golden(t, "test-one-verbose.golden", out)

	code, out, _ = run(t, append(base, "--agent", "emailer", "--action", "write:email", "--context", `{"recipient":"a@example.com","recipients":2}`, "--at", "2026-03-03T10:00:00Z", "--json")...)
	var d map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || d["decision"] != "allow" || d["rule"] != "office-hours" || d["agent"] != "emailer" {
		t.Fatalf("allowed request: exit %d %s", code, out)
	}
}

// TestReadmeTourPolicy runs step 8 of the README tour: the weekend-reports
// policy added to the examples lets emailers send reports on Saturdays, and
// only that.
func TestReadmeTourPolicy(t *testing.T) {
	dir := t.TempDir()
	entries, err := os.ReadDir(examplePolicies)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(examplePolicies, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "   ```yaml\n   name: weekend-reports")
	if !ok {
		t.Fatal("README no longer holds the weekend-reports policy")
	}
	body, _, _ := strings.Cut(rest, "   ```")
	policyYAML := "name: weekend-reports" + strings.ReplaceAll(body, "\n   ", "\n")
	if err := os.WriteFile(filepath.Join(dir, "weekend.yaml"), []byte(policyYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"policy", "test", "--policies", dir, "--agents", exampleAgents, "--agent", "emailer", "--action", "write:email"}
	// 2026-03-07 is a Saturday.
	if code, out, errOut := run(t, append(base, "--context", `{"recipient":"reports@example.com"}`, "--at", "2026-03-07T11:00:00+01:00")...); code != 0 {
		t.Fatalf("Saturday report: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := run(t, append(base, "--context", `{"recipient":"bob@example.com"}`, "--at", "2026-03-07T11:00:00+01:00")...); code != ExitFailure {
		t.Fatalf("Saturday mail to someone else: exit %d, want denied", code)
	}
	if code, _, _ := run(t, append(base, "--context", `{"recipient":"reports@example.com"}`, "--at", "2026-03-08T11:00:00+01:00")...); code != ExitFailure {
		t.Fatalf("Sunday report: exit %d, want denied", code)
	}
}
