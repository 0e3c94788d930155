package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
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

	// --add-to writes the entry into a proxies file and prints only the
	// credential; a second proxy is added; the same name again is refused
	// and changes nothing.
	file := filepath.Join(t.TempDir(), "proxies.yaml")
	first := strings.TrimSpace(l.must(t, "filter", "token", "envoy-1", "--add-to", file))
	second := strings.TrimSpace(l.must(t, "filter", "token", "envoy-2", "--add-to", file))
	before, _ := os.ReadFile(file)
	if code, _, errOut := runEnv(t, nil, "filter", "token", "envoy-1", "--add-to", file); code != 2 || !strings.Contains(errOut, "envoy-1") {
		t.Errorf("a name listed twice: exit %d, %q", code, errOut)
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Errorf("a refused entry changed the file:\n%s", after)
	}
	a, err = proxyauth.New(proxyauth.Config{File: file, Secret: testAdminToken})
	if err != nil {
		t.Fatal(err)
	}
	for want, cred := range map[string]string{"envoy-1": first, "envoy-2": second} {
		if name, err := a.Token(cred); err != nil || name != want {
			t.Errorf("--add-to: credential %q is %q, %v; want %s", cred, name, err, want)
		}
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
