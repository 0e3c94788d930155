package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/store"
)

const replayRecorded = `
name: p
appliesTo: {tags: [a]}
rules:
  - {name: reads, effect: allow, actions: ["read:*"]}
  - {name: writes, effect: allow, actions: ["write:*"]}
`

const replayCandidate = `
name: p
appliesTo: {tags: [a]}
rules:
  - {name: no-secrets, effect: deny, actions: ["write:secret/*"]}
  - {name: reads, effect: allow, actions: ["read:*"]}
  - {name: writes, effect: allow, actions: ["write:*"]}
  - {name: deletes, effect: allow, actions: ["delete:*"]}
`

// replayDataDir is a DATA_DIR whose trail holds records of fixed ids and
// times: a decision that stays, one each way that changes, a refusal
// before policy and a record sealed before records held their inputs.
func replayDataDir(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.OpenSQLite(ctx, filepath.Join(dir, "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := audit.NewWriter(ctx, s, audit.WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rec := func(i int, decision string, status int, reason, action, rule string, in *audit.Inputs) audit.Record {
		r := audit.Record{ID: "aud_" + string(rune('a'+i)), Timestamp: at.Add(time.Duration(i) * time.Minute),
			TraceID: strings.Repeat(string(rune('0'+i)), 32), AgentID: "agent_a", AgentName: "a", TrustTier: "verified",
			Action: action, Resource: "/" + action[strings.IndexByte(action, ':')+1:], Decision: decision, Status: status, Reason: reason,
			Chain: []string{"agent_a"}, Source: "gateway", Mode: "enforce", Inputs: in}
		if rule != "" {
			r.Policy, r.Rule = "p", rule
		}
		return r
	}
	tags := &audit.Inputs{Tags: []string{"a"}}
	for i, r := range []audit.Record{
		rec(0, "allow", 200, "rule_allow", "read:docs", "reads", tags),
		rec(1, "allow", 200, "rule_allow", "write:secret/x", "writes", tags),
		rec(2, "deny", 403, "no_matching_rule", "delete:x", "", tags),
		rec(3, "deny", 401, engine.ReasonUnauthorized, "read:docs", "", nil),
		rec(4, "allow", 200, "rule_allow", "read:docs", "reads", nil),
	} {
		if r.Reason == "no_matching_rule" {
			r.Policy = "p"
		}
		if err := w.Write(ctx, r); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPolicyReplayOffline: --data-dir reads the store itself; the report
// (text and --json, golden files: go test ./cli -update) names each
// change, and --fail-on sets the exit code on exactly the kinds named.
func TestPolicyReplayOffline(t *testing.T) {
	dir := replayDataDir(t)
	candidate := writeTemp(t, "candidate.yaml", replayCandidate)
	recorded := writeTemp(t, "recorded.yaml", replayRecorded)
	code, out, errOut := run(t, "policy", "replay", "--policies", candidate, "--data-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "policy_replay.txt", strings.ReplaceAll(out, candidate, "CANDIDATE"))
	code, out, _ = run(t, "policy", "replay", "--policies", candidate, "--data-dir", dir, "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d", code)
	}
	golden(t, "policy_replay.json", out)

	tests := []struct {
		name     string
		policies string
		args     []string
		want     int
	}{
		{"allow-to-deny found", candidate, []string{"--fail-on", "allow-to-deny"}, ExitFailure},
		{"deny-to-allow found", candidate, []string{"--fail-on", "deny-to-allow"}, ExitFailure},
		{"both named", candidate, []string{"--fail-on", "allow-to-deny,deny-to-allow"}, ExitFailure},
		{"the recorded policies change nothing", recorded, []string{"--fail-on", "allow-to-deny,deny-to-allow"}, ExitOK},
		{"no --fail-on: changes are a report, not a failure", candidate, nil, ExitOK},
		{"only the deny changed, filtered to it", candidate, []string{"--action", "delete:*", "--fail-on", "allow-to-deny"}, ExitOK},
		{"a time window without the changes", candidate, []string{"--since", "2026-03-02T10:03:00Z", "--fail-on", "allow-to-deny,deny-to-allow"}, ExitOK},
		{"an unknown kind", candidate, []string{"--fail-on", "allow-to-allow"}, ExitUsage},
		{"too many examples", candidate, []string{"--examples", "101"}, ExitUsage},
		{"since after until", candidate, []string{"--since", "2026-03-03", "--until", "2026-03-02"}, ExitUsage},
		{"both stores", candidate, []string{"--database-url", "postgres://x"}, ExitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"policy", "replay", "--policies", tc.policies, "--data-dir", dir, "--quiet"}, tc.args...)
			if code, _, errOut := run(t, args...); code != tc.want {
				t.Fatalf("exit %d, want %d: %s", code, tc.want, errOut)
			}
		})
	}
	if code, _, errOut := run(t, "policy", "replay", "--data-dir", dir); code != ExitUsage || !strings.Contains(errOut, "--policies") {
		t.Fatalf("without --policies: exit %d: %s", code, errOut)
	}
	bad := writeTemp(t, "bad.yaml", "name: p\nrules: [{name: r, effect: maybe, actions: [\"x:y\"]}]\n")
	if code, _, errOut := run(t, "policy", "replay", "--policies", bad, "--data-dir", dir); code != ExitUsage || !strings.Contains(errOut, "bad.yaml:2") {
		t.Fatalf("bad candidate: exit %d: %s", code, errOut)
	}
}

// TestPolicyReplayOnline: through the admin API the server streams its own
// trail and reports exactly what the offline mode reports from the same
// store; the admin token is required.
func TestPolicyReplayOnline(t *testing.T) {
	l := newLive(t)
	ctx := context.Background()
	_, res := l.f.Agent(t, "researcher", 1, []string{"researcher"})
	for _, path := range []string{"/docs/a", "/notes/b", "/secret/c"} {
		if _, err := l.f.Engine.Check(ctx, &engine.Request{Source: engine.SourceGateway, Token: res, Method: "GET", Path: path}); err != nil {
			t.Fatal(err)
		}
	}
	candidate := filepath.Join(t.TempDir(), "candidate")
	copyDir(t, l.dir, candidate)
	writeFile(t, filepath.Join(candidate, "zz-no-secrets.yaml"),
		"name: zz-no-secrets\nappliesTo: {tags: [researcher]}\nrules:\n  - {name: secrets, effect: deny, actions: [\"read:secret/*\"]}\ndefaultEffect: allow\n")
	online := l.must(t, "policy", "replay", "--policies", candidate, "--json")
	code, offline, errOut := run(t, "policy", "replay", "--policies", candidate, "--json", "--data-dir", l.f.Dir)
	if code != 0 {
		t.Fatalf("offline: exit %d: %s", code, errOut)
	}
	if online != offline {
		t.Fatalf("online and offline differ:\n%s\n%s", online, offline)
	}
	rep := decodeJSON[api.PolicyReplayReport](t, online)
	if rep.AllowToDeny != 1 || len(rep.Changes) != 1 || rep.Changes[0].New.Policy != "zz-no-secrets" || rep.Changes[0].Examples[0].Resource != "/secret/c" {
		t.Fatalf("report: %s", online)
	}
	bad := writeTemp(t, "bad.yaml", "name: p\nrules: [{name: r, effect: maybe, actions: [\"x:y\"]}]\n")
	if code, _, errOut := l.mg(t, "policy", "replay", "--policies", bad); code != ExitUsage || !strings.Contains(errOut, "bad.yaml:2") {
		t.Fatalf("a bad candidate through the server: exit %d: %s", code, errOut)
	}
	code, _, errOut = runEnv(t, map[string]string{"MESHGUARD_GATEWAY_URL": l.url, "MESHGUARD_ADMIN_TOKEN": "mgadm_wrong-token-0123456789abcdef0"},
		"policy", "replay", "--policies", candidate)
	if code != ExitAuth {
		t.Fatalf("a wrong admin token: exit %d: %s", code, errOut)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the files of src into a new directory dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, e.Name()), string(data))
	}
}
