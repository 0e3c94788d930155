package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/identity"
)

var tokenLines = regexp.MustCompile(`(?m)^    token \(shown only now; it expires [^)]+\): (\S+)$`)

// agentsJSON is the server's agents, as `agent list --json` prints them.
func (l *live) agentsJSON(t *testing.T) []identity.Agent {
	t.Helper()
	return decodeJSON[[]identity.Agent](t, l.must(t, "agent", "list", "--json"))
}

// TestAgentApply: the first run creates the file's agents (a revoked one
// revoked) and prints each new token once; a second run changes nothing and
// says so; a changed tier or tag list updates just that agent.
func TestAgentApply(t *testing.T) {
	l := newLive(t)

	out := l.must(t, "agent", "apply", "-f", exampleAgents)
	for _, want := range []string{
		"✓ created   orchestrator (", "✓ created   researcher (", "✓ created   emailer (", "✓ created   scraper (",
		"✓ created   old-emailer (", "revoked as the file says", "5 created, 0 updated, 0 revoked, 0 unchanged",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("first run lacks %q:\n%s", want, out)
		}
	}
	byName := map[string]identity.Agent{}
	for _, ag := range l.agentsJSON(t) {
		byName[ag.Name] = ag
	}
	if len(byName) != 5 || byName["old-emailer"].Active() || !byName["scraper"].Active() ||
		byName["orchestrator"].TrustTier.String() != "trusted" || !cmp.Equal(byName["emailer"].Tags, []string{"emailer"}) {
		t.Fatalf("agents after the first run: %+v", byName)
	}
	// One token per active agent created, each that agent's.
	tokens := tokenLines.FindAllStringSubmatch(out, -1)
	if len(tokens) != 4 {
		t.Fatalf("%d tokens printed, want 4 (none for the revoked agent):\n%s", len(tokens), out)
	}
	for i, name := range []string{"orchestrator", "researcher", "emailer", "scraper"} {
		l.verifyToken(t, tokens[i][1], byName[name].ID)
	}

	// Idempotent: nothing changes, no token, and it says so.
	before := l.agentsJSON(t)
	out = l.must(t, "agent", "apply", "-f", exampleAgents)
	if strings.Count(out, "✓ unchanged ") != 5 || strings.Contains(out, "token") || !strings.Contains(out, "no changes: 5 agents as in the file") {
		t.Fatalf("second run:\n%s", out)
	}
	if diff := cmp.Diff(before, l.agentsJSON(t)); diff != "" {
		t.Fatalf("a second run changed agents (-before +after):\n%s", diff)
	}

	// A changed tier and tag list update that agent alone; --json says so.
	changed := writeTemp(t, "agents.yaml", `agents:
  - { name: researcher, trustTier: trusted, tags: [researcher, papers] }
  - { name: emailer, trustTier: verified, tags: [emailer] }
  - { name: scraper, trustTier: untrusted, tags: [researcher], status: revoked }
`)
	got := decodeJSON[struct{ Agents []appliedAgent }](t, l.must(t, "agent", "apply", "-f", changed, "--json")).Agents
	want := []appliedAgent{
		{Name: "researcher", ID: byName["researcher"].ID, Action: "updated", TrustTier: "trusted", Tags: []string{"researcher", "papers"}, Status: "active",
			Changes: []string{"tier verified → trusted", "tags researcher → researcher,papers"}},
		{Name: "emailer", ID: byName["emailer"].ID, Action: "unchanged", TrustTier: "verified", Tags: []string{"emailer"}, Status: "active"},
		{Name: "scraper", ID: byName["scraper"].ID, Action: "revoked", TrustTier: "untrusted", Tags: []string{"researcher"}, Status: "revoked"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("apply --json (-want +got):\n%s", diff)
	}
	// --quiet still prints a new agent's line and token, and nothing else.
	quiet := writeTemp(t, "agents.yaml", "agents:\n  - { name: emailer, trustTier: verified, tags: [emailer] }\n  - { name: fresh, trustTier: verified }\n")
	out = l.must(t, "agent", "apply", "-f", quiet, "--quiet")
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "✓ created   fresh (") ||
		len(tokenLines.FindAllString(out, -1)) != 1 {
		t.Fatalf("--quiet:\n%s", out)
	}

	ag := decodeJSON[identity.Agent](t, l.must(t, "agent", "show", "researcher", "--json"))
	if ag.TrustTier.String() != "trusted" || !cmp.Equal(ag.Tags, []string{"researcher", "papers"}) {
		t.Fatalf("researcher after the update: %+v", ag)
	}
}

// TestAgentApplyRefuses: a bad file, or one that would bring a revoked
// agent back, changes nothing, and says where and why.
func TestAgentApplyRefuses(t *testing.T) {
	l := newLive(t)
	l.must(t, "agent", "create", "--quiet", "gone", "--trust", "verified")
	l.must(t, "agent", "revoke", "gone")
	before := l.agentsJSON(t)

	tests := []struct {
		name    string
		file    string
		code    int
		want    []string
		offline bool // refused before any request
	}{
		{"a tier the parser refuses", "agents:\n  - { name: fresh, trustTier: verified }\n  - { name: other, trustTier: admin }\n",
			ExitUsage, []string{":3: agents[1].trustTier:"}, true},
		{"a name the server would refuse", "agents:\n  - { name: fresh, trustTier: verified }\n  - { name: agent_x, trustTier: verified }\n",
			ExitUsage, []string{":3: agents[1]: name:", `must not start with "agent_"`}, true},
		{"a tag the server would refuse", "agents:\n  - { name: fresh, trustTier: verified }\n  - { name: other, trustTier: verified, tags: [\"has space\"] }\n",
			ExitUsage, []string{":3: agents[1]: tags:", `"has space"`}, true},
		{"an id and no name", "agents:\n  - { name: fresh, trustTier: verified }\n  - { id: agent_x01, trustTier: verified }\n",
			ExitUsage, []string{":3: agents[1].name: missing: agent apply matches agents by name"}, true},
		{"not an agents file", "services: []\n", ExitUsage, []string{"services"}, true},
		{"a revoked agent brought back", "agents:\n  - { name: fresh, trustTier: verified }\n  - { name: gone, trustTier: verified }\n",
			ExitFailure, []string{"nothing applied", ":3: agent \"gone\"", "revoked on the server", "never reactivated"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeTemp(t, "agents.yaml", tc.file)
			requests := l.requests.Load()
			code, out, errOut := l.mg(t, "agent", "apply", "-f", file)
			if code != tc.code || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and no stdout", code, out, errOut, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tc.offline && l.requests.Load() != requests {
				t.Error("a bad file reached the server")
			}
			if diff := cmp.Diff(before, l.agentsJSON(t)); diff != "" {
				t.Fatalf("a refused file changed agents (-before +after):\n%s", diff)
			}
		})
	}
	if code, _, errOut := l.mg(t, "agent", "apply"); code != ExitUsage || !strings.Contains(errOut, "-f FILE") {
		t.Fatalf("no -f: exit %d, %q", code, errOut)
	}
}
