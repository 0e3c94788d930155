package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/proxyauth"
)

// TestFilterCommands: `filter token NAME` makes a new proxy credential and
// the PROXIES_FILE entry (its digest) that lets it in; `filter config`
// prints the configuration a filter fetches.
func TestFilterCommands(t *testing.T) {
	l := newLive(t)
	l.must(t, "agent", "create", "--quiet", "scout", "--trust", "verified")
	out := l.must(t, "filter", "token", "edge-1")
	cred, entry, ok := strings.Cut(out, "PROXIES_FILE entry:\n")
	cred = strings.TrimSpace(cred[strings.LastIndex(cred, " ")+1:])
	set, err := proxyauth.Parse([]byte("proxies:\n" + entry))
	if !ok || err != nil || set.Len() != 1 || !strings.HasPrefix(cred, "mgp_") || strings.Contains(entry, cred) {
		t.Fatalf("filter token printed %q (%v)", out, err)
	}
	a, err := proxyauth.New(proxyauth.Config{File: writeTemp(t, "proxies.yaml", "proxies:\n"+entry), Secret: testAdminToken})
	if err != nil {
		t.Fatal(err)
	}
	if name, err := a.Token(cred); err != nil || name != "edge-1" {
		t.Fatalf("the printed entry does not let the printed credential in: %q, %v", name, err)
	}
	if again := l.must(t, "filter", "token", "edge-1"); again == out {
		t.Fatal("two credentials made alike")
	}
	if code, _, errOut := runEnv(t, nil, "filter", "token", "no spaces"); code != 2 || !strings.Contains(errOut, "NAME") {
		t.Errorf("a bad name: exit %d, %q", code, errOut)
	}
	out = l.must(t, "filter", "config")
	c, err := filterconfig.Parse([]byte(out))
	if err != nil || len(c.Agents) != 1 || c.Agents[0].Name != "scout" {
		t.Fatalf("filter config: %v\n%s", err, out)
	}
	var indented map[string]any
	if json.Unmarshal([]byte(out), &indented) != nil || !strings.Contains(out, "\n  \"version\": 1") {
		t.Errorf("not indented JSON:\n%.200s", out)
	}
	if code, _, errOut := runEnv(t, map[string]string{"MESHGUARD_GATEWAY_URL": l.url}, "filter", "config"); code != 3 || !strings.Contains(errOut, "admin token") {
		t.Errorf("without an admin token: exit %d, %q", code, errOut)
	}
}
