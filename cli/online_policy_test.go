package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/identity"
)

func TestOnlinePolicies(t *testing.T) {
	l := newLive(t)

	// list: the file policies, with their files and lines.
	out := l.must(t, "policy", "list")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !slices.Equal(strings.Fields(lines[0]), []string{"NAME", "VERSION", "RULES", "SOURCE"}) {
		t.Fatalf("policy list header:\n%s", out)
	}
	if want := []string{"researchers", "1.0", "4", filepath.Join(l.dir, "research.yaml") + ":2"}; !containsRow(lines, want) {
		t.Errorf("policy list lacks %v:\n%s", want, out)
	}
	before := decodeJSON[map[string]any](t, l.must(t, "policy", "list", "--json"))

	// apply a directory: every *.yaml and *.yml as one change; dot files
	// and other files skipped.
	dir := t.TempDir()
	for name, content := range map[string]string{
		"support.yaml": supportPolicy, "more/tickets.yml": ticketsPolicy,
		".hidden.yaml": "this: is not read", "README.md": "not a policy",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out = l.must(t, "policy", "apply", dir)
	revision := regexp.MustCompile(`revision ([0-9a-f]+)\n$`).FindStringSubmatch(out)
	if !strings.HasPrefix(out, "✓ tickets (created, 1 rule)\n✓ support (created, 2 rules)\n") && !strings.HasPrefix(out, "✓ support (created, 2 rules)\n✓ tickets (created, 1 rule)\n") ||
		revision == nil || !strings.Contains(out, "2 policies applied from 2 files") {
		t.Fatalf("apply:\n%s", out)
	}
	out = l.must(t, "policy", "list")
	if !containsRow(strings.Split(out, "\n"), []string{"support", "1.0", "2", "stored"}) || !containsRow(strings.Split(out, "\n"), []string{"tickets", "-", "1", "stored"}) {
		t.Errorf("list after apply:\n%s", out)
	}
	applied := decodeJSON[map[string]any](t, l.must(t, "policy", "list", "--json"))

	// show: a stored policy's YAML verbatim; a file policy's JSON form.
	if out := l.must(t, "policy", "show", "support"); out != supportPolicy {
		t.Errorf("show support:\n%s", out)
	}
	code, out, errOut := l.mg(t, "policy", "show", "researchers")
	p := decodeJSON[map[string]any](t, out)
	if code != 0 || p["name"] != "researchers" || len(p["rules"].([]any)) != 4 || !strings.Contains(errOut, "research.yaml:2") {
		t.Errorf("show researchers: exit %d\n%s\n%s", code, out, errOut)
	}
	detail := decodeJSON[map[string]any](t, l.must(t, "policy", "show", "support", "--json"))
	if detail["yaml"] != supportPolicy || detail["source"] != "stored" || detail["inForce"] != true {
		t.Errorf("show --json: %v", detail)
	}

	// A broken change: exit 2, every error located, nothing stored.
	broken := t.TempDir()
	changed := strings.Replace(supportPolicy, "version: \"1.0\"", "version: \"2.0\"", 1)
	if err := os.WriteFile(filepath.Join(broken, "a-support.yaml"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(broken, "b-bad.yaml")
	if err := os.WriteFile(bad, []byte("name: bad\nrules:\n  - name: r\n    effect: alow\n    actions: [read]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = l.mg(t, "policy", "apply", broken)
	if code != ExitUsage || out != "" {
		t.Fatalf("broken apply: exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		"✗ " + bad + `:4: rules[0].effect: "alow" is not an effect (expected allow, deny or approve)`,
		"✗ " + bad + `:5: rules[0].actions[0]: "read": expected an action verb:resource`,
		"nothing was stored",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("broken apply: stderr lacks %q:\n%s", want, errOut)
		}
	}
	if diff := cmp.Diff(applied, decodeJSON[map[string]any](t, l.must(t, "policy", "list", "--json"))); diff != "" {
		t.Errorf("a refused apply changed the set (-before +after):\n%s", diff)
	}
	if out := l.must(t, "policy", "show", "support"); out != supportPolicy {
		t.Errorf("a refused apply changed support:\n%s", out)
	}

	// A policy a file defines cannot be replaced: exit 1 (409), located.
	clash := writeTemp(t, "clash.yaml", "name: researchers\nrules: []\n")
	code, _, errOut = l.mg(t, "policy", "apply", clash)
	if code != ExitFailure || !strings.Contains(errOut, "✗ "+clash+":1: name:") || !strings.Contains(errOut, "research.yaml:2") {
		t.Errorf("clash: exit %d\n%s", code, errOut)
	}

	// apply --json; re-applying replaces.
	res := decodeJSON[map[string]any](t, l.must(t, "policy", "apply", filepath.Join(dir, "support.yaml"), "--json"))
	if diff := cmp.Diff([]string{"applied", "inForce", "revision"}, keysOf(res)); diff != "" || res["inForce"] != true ||
		res["applied"].([]any)[0].(map[string]any)["created"] != false {
		t.Errorf("apply --json: %v %s", res, diff)
	}

	// delete: stored policies only.
	out = l.must(t, "policy", "delete", "tickets")
	if !strings.HasPrefix(out, "✓ deleted policy tickets, revision ") {
		t.Errorf("delete: %q", out)
	}
	del := decodeJSON[map[string]any](t, l.must(t, "policy", "delete", "support", "--json"))
	if del["deleted"] != "support" || del["inForce"] != true {
		t.Errorf("delete --json: %v", del)
	}
	if diff := cmp.Diff(before["policies"], decodeJSON[map[string]any](t, l.must(t, "policy", "list", "--json"))["policies"]); diff != "" {
		t.Errorf("after deleting what was applied (-before +after):\n%s", diff)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"policy", "delete", "researchers"}, ExitFailure, "delete it there"},
		{[]string{"policy", "delete", "support"}, ExitFailure, "404 not_found"},
		{[]string{"policy", "show", "support"}, ExitFailure, `no policy named "support"`},
		{[]string{"policy", "apply", t.TempDir()}, ExitUsage, "no *.yaml or *.yml files"},
		{[]string{"policy", "apply", "/nonexistent/p.yaml"}, ExitUsage, "no such file"},
	} {
		if code, _, errOut := l.mg(t, tc.args...); code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

// TestOnlinePolicyLoadErrors: when the server's last reload failed, `policy
// list` still lists the set in force and says why on stderr, and an apply is
// refused until the files load.
func TestOnlinePolicyLoadErrors(t *testing.T) {
	l := newLive(t)
	if err := os.WriteFile(filepath.Join(l.dir, "zz-broken.yaml"), []byte("name: broken\nrules: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.f.Policies.Reload(context.Background()); err == nil {
		t.Fatal("a broken policy file loaded")
	}
	code, out, errOut := l.mg(t, "policy", "list")
	if code != 0 || !containsRow(strings.Split(out, "\n"), []string{"baseline", "-", "1", filepath.Join(l.dir, "baseline.yaml") + ":2"}) ||
		!strings.Contains(errOut, "✗ "+filepath.Join(l.dir, "zz-broken.yaml")+":2: rules: expected a list of rules") ||
		!strings.Contains(errOut, "warning: the server's last policy reload failed; the set shown is the last good one, still in force") {
		t.Errorf("list with load errors: exit %d\n%s\n%s", code, out, errOut)
	}
	list := decodeJSON[map[string]any](t, l.must(t, "policy", "list", "--json"))
	if len(list["loadErrors"].([]any)) != 1 {
		t.Errorf("list --json: %v", list)
	}
	code, _, errOut = l.mg(t, "policy", "apply", writeTemp(t, "support.yaml", supportPolicy))
	if code != ExitFailure || !strings.Contains(errOut, "zz-broken.yaml:2: rules:") || !strings.Contains(errOut, "409 conflict") {
		t.Errorf("apply while the files do not load: exit %d\n%s", code, errOut)
	}
}

// containsRow reports whether a table line holds exactly the cells want.
func containsRow(lines []string, want []string) bool {
	for _, l := range lines {
		if slices.Equal(strings.Fields(l), want) {
			return true
		}
	}
	return false
}

var revisions = regexp.MustCompile(`(policy revision |"policyRevision": ")[0-9a-f]+`)

// TestOnlinePolicyTest runs the same cases online, against the agents of
// examples/agents.yaml loaded with `agent apply` (as docs/cli.md does), and offline: the
// output is the same, line for line, and so are the exit codes.
func TestOnlinePolicyTest(t *testing.T) {
	l := newLive(t)
	l.must(t, "agent", "apply", "-f", exampleAgents)

	failing := writeTemp(t, "tests.yaml", `tests:
  - {name: reads, agent: researcher, action: "read:papers", expect: allow}
  - {name: wrongly hopeful, agent: researcher, action: "delete:papers", expect: allow}
  - {name: wrong reason, agent: researcher, action: "delete:papers", expect: deny, expectReason: rule_deny}
  - {name: chained, agent: emailer, action: "read:contacts", chain: [researcher, orchestrator], expect: deny, expectReason: delegation_depth}
`)
	offline := []string{"--policies", examplePolicies, "--agents", exampleAgents}
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"examples file", []string{"--file", exampleTests}, 0},
		{"examples file verbose", []string{"--file", exampleTests, "--verbose"}, 0},
		{"examples file json", []string{"--file", exampleTests, "--json"}, 0},
		{"failing file", []string{"--file", failing}, ExitFailure},
		{"failing file json", []string{"--file", failing, "--json"}, ExitFailure},
		{"failing file quiet", []string{"--file", failing, "--quiet"}, ExitFailure},
		{"one denied verbose", []string{"--agent", "researcher", "--action", "write:notes/x", "--chain", "orchestrator", "--verbose"}, ExitFailure},
		{"one allowed", []string{"--agent", "emailer", "--action", "write:email", "--context", `{"recipient":"a@example.com","recipients":2}`, "--at", "2026-03-03T10:00:00Z"}, 0},
		{"one allowed json", []string{"--agent", "emailer", "--action", "write:email", "--resource", "/mail", "--context", `{"recipient":"a@example.com","recipients":2}`, "--at", "2026-03-03T10:00:00Z", "--json", "--verbose"}, 0},
		{"one revoked in the chain", []string{"--agent", "researcher", "--action", "read:papers", "--chain", "old-emailer", "--json"}, ExitFailure},
		{"one revoked", []string{"--agent", "old-emailer", "--action", "read:papers"}, ExitFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"policy", "test"}, tc.args...)
			code, onOut, onErr := l.mg(t, args...)
			offCode, offOut, offErr := run(t, append(args, offline...)...)
			if code != tc.code || offCode != tc.code {
				t.Fatalf("exit online %d, offline %d, want %d\n%s%s", code, offCode, tc.code, onOut, onErr)
			}
			if onErr != "" || offErr != "" {
				t.Errorf("stderr online %q, offline %q", onErr, offErr)
			}
			onOut, offOut = revisions.ReplaceAllString(onOut, "${1}REV"), revisions.ReplaceAllString(offOut, "${1}REV")
			if diff := cmp.Diff(offOut, onOut); diff != "" {
				t.Errorf("online output differs from offline (-offline +online):\n%s", diff)
			}
		})
	}

	// The examples' cases pass online, as the offline golden file says.
	out := l.must(t, "policy", "test", "--file", exampleTests)
	golden(t, "test-examples.golden", out)

	// Bad input: exit 2, located in the user's file.
	badTests := writeTemp(t, "tests.yaml", "tests:\n  - {agent: ghost, action: a:b, expect: allow}\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown agent in a file", []string{"--file", badTests}, "✗ " + badTests + `:2: tests[0].agent: unknown agent "ghost"`},
		{"unknown agent", []string{"--agent", "ghost", "--action", "read:x"}, `agent: no agent with id or name "ghost"`},
		{"unknown chain agent", []string{"--agent", "researcher", "--action", "read:x", "--chain", "ghost"}, `chain[0]: no agent with id or name "ghost"`},
		{"bad action", []string{"--agent", "researcher", "--action", "read"}, "action:"},
		{"context not JSON", []string{"--agent", "researcher", "--action", "read:x", "--context", "{nope"}, "--context: expected a JSON object"},
		{"bad --at", []string{"--agent", "researcher", "--action", "read:x", "--at", "noon"}, "--at"},
		{"missing tests file", []string{"--file", "/nonexistent.yaml"}, "--file"},
		{"no mode", nil, "give --file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := l.mg(t, append([]string{"policy", "test"}, tc.args...)...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
		})
	}
}

func TestOnlineKeysRotate(t *testing.T) {
	l := newLive(t)
	before := l.must(t, "agent", "create", "researcher", "--trust", "verified")
	out := l.must(t, "keys", "rotate")
	if !regexp.MustCompile(`^✓ new signing key \S+ \(EdDSA\) is current; tokens signed by the previous key stay valid until they expire\n$`).MatchString(out) {
		t.Errorf("rotate: %q", out)
	}
	k := decodeJSON[map[string]any](t, l.must(t, "keys", "rotate", "--alg", "es256", "--json"))
	if diff := cmp.Diff([]string{"alg", "kid"}, keysOf(k)); diff != "" || k["alg"] != "ES256" || k["kid"] == "" {
		t.Errorf("rotate --json: %v %s", k, diff)
	}
	// New tokens are signed by the new key; the old token still verifies.
	v := l.verifyToken(t, strings.TrimSpace(l.must(t, "agent", "token", "researcher")), "")
	if v.Alg != "ES256" || v.KID != k["kid"] {
		t.Errorf("token after rotation: alg %s kid %s", v.Alg, v.KID)
	}
	if _, err := l.f.Verifier.Verify(context.Background(), strings.TrimSpace(before)); err != nil {
		t.Errorf("a token of the previous key: %v", err)
	}
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func TestOnlineExitCodes(t *testing.T) {
	l := newLive(t)
	l.must(t, "agent", "create", "taken", "--quiet")
	down := closedURL(t)
	outDir := filepath.Join(t.TempDir(), "missing", "x.jwt")
	noToken := map[string]string{"MESHGUARD_GATEWAY_URL": l.url}
	withToken := l.env()
	adminCommands := [][]string{
		{"agent", "create", "x"}, {"agent", "list"}, {"agent", "show", "x"}, {"agent", "update", "x", "--trust", "verified"},
		{"agent", "revoke", "x"}, {"agent", "token", "x"}, {"policy", "list"}, {"policy", "show", "x"},
		{"policy", "apply", examplePolicies}, {"policy", "delete", "x"}, {"policy", "test", "--file", exampleTests},
		{"policy", "test", "--agent", "x", "--action", "read:x"}, {"keys", "rotate"},
	}
	type exitCase struct {
		name      string
		env       map[string]string
		args      []string
		code      int
		want      []string
		noRequest bool // the CLI must fail before sending anything
	}
	var tests []exitCase
	for _, args := range adminCommands {
		name := strings.Join(args[:2], " ")
		tests = append(tests,
			exitCase{"no admin token: " + name, noToken, args, ExitAuth, []string{"no admin token", "MESHGUARD_ADMIN_TOKEN", "--admin-token"}, true},
			exitCase{"wrong admin token: " + name, noToken, append([]string{"--admin-token", "mgadm_wrong-token-0123456789abcdef"}, args...), ExitAuth,
				[]string{"refused the admin token: invalid admin token", "MESHGUARD_ADMIN_TOKEN", "--admin-token"}, false},
			exitCase{"server down: " + name, map[string]string{"MESHGUARD_ADMIN_TOKEN": testAdminToken}, append([]string{"--gateway", down}, args...), ExitNetwork,
				[]string{"cannot reach MeshGuard at " + down, "connection refused", "meshguard serve"}, true},
		)
	}
	tests = append(tests, []exitCase{
		{"bad gateway URL", withToken, []string{"--gateway", "ftp://x", "agent", "list"}, ExitUsage, []string{"--gateway (MESHGUARD_GATEWAY_URL)"}, true},
		{"unknown agent", withToken, []string{"agent", "show", "ghost"}, ExitFailure, []string{`no agent with id or name "ghost" [404 not_found]`}, false},
		{"name taken", withToken, []string{"agent", "create", "taken"}, ExitFailure, []string{"409 conflict"}, false},
		{"bad host", withToken, []string{"agent", "create", "x", "--hosts", "A.mesh"}, ExitUsage, []string{"hosts", "400 bad_request"}, false},
		{"ttl beyond the keyring's limit", withToken, []string{"agent", "create", "x", "--ttl", "1000h"}, ExitUsage, []string{"ttl"}, false},
		{"unknown tier", withToken, []string{"agent", "create", "x", "--trust", "admin"}, ExitUsage, []string{`--trust: unknown trust tier "admin"`}, true},
		{"negative ttl", withToken, []string{"agent", "create", "x", "--ttl", "-1h"}, ExitUsage, []string{"--ttl"}, true},
		{"metadata without =", withToken, []string{"agent", "create", "x", "--metadata", "owner"}, ExitUsage, []string{"expected key=value"}, true},
		{"metadata key twice", withToken, []string{"agent", "create", "x", "--metadata", "a=1,a=2"}, ExitUsage, []string{`key "a" given twice`}, true},
		{"empty tag", withToken, []string{"agent", "create", "x", "--tags", "a,,b"}, ExitUsage, []string{"empty entry"}, true},
		{"output into a missing directory", withToken, []string{"agent", "create", "x", "--output", outDir}, ExitUsage, []string{"--output"}, true},
		{"output is a directory", withToken, []string{"agent", "token", "taken", "--output", t.TempDir()}, ExitUsage, []string{"not a regular file"}, true},
		{"list by unknown tier", withToken, []string{"agent", "list", "--trust", "admin"}, ExitUsage, []string{"--trust"}, true},
		{"list by unknown status", withToken, []string{"agent", "list", "--status", "gone"}, ExitUsage, []string{"expected active or revoked"}, true},
		{"update nothing", withToken, []string{"agent", "update", "taken"}, ExitUsage, []string{"nothing to change"}, true},
		{"update an unknown agent", withToken, []string{"agent", "update", "x", "--name", "taken"}, ExitFailure, []string{"404 not_found"}, false},
		{"unknown alg", withToken, []string{"keys", "rotate", "--alg", "RS256"}, ExitUsage, []string{`--alg: "RS256"`}, true},
		{"create needs a name", withToken, []string{"agent", "create"}, ExitUsage, []string{"accepts 1 arg(s)"}, true},
		{"unknown agent subcommand", withToken, []string{"agent", "delete", "x"}, ExitUsage, []string{`unknown command "delete" for "meshguard agent"`}, true},
		{"unknown keys subcommand", withToken, []string{"keys", "list"}, ExitUsage, []string{`unknown command "list" for "meshguard keys"`}, true},
	}...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := l.requests.Load()
			code, out, errOut := runEnv(t, tc.env, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tc.noRequest && l.requests.Load() != n {
				t.Errorf("%d requests were sent; want none", l.requests.Load()-n)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
	// Nothing that failed created anything.
	agents := decodeJSON[[]identity.Agent](t, l.must(t, "agent", "list", "--json"))
	if len(agents) != 1 || agents[0].Name != "taken" {
		t.Errorf("agents after the failures: %+v", agents)
	}
}
