package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/filterconfig"
)

// TestFilterCommands: `filter token` prints the credential a hand-deployed
// filter (an Istio WasmPlugin) uses, and `filter config` the configuration
// it fetches with it.
func TestFilterCommands(t *testing.T) {
	l := newLive(t)
	l.must(t, "agent", "create", "--quiet", "scout", "--trust", "verified")
	if got := strings.TrimSpace(l.must(t, "filter", "token")); got != filterconfig.FilterToken(testAdminToken) {
		t.Fatalf("filter token printed %q", got)
	}
	out := l.must(t, "filter", "config")
	c, err := filterconfig.Parse([]byte(out))
	if err != nil || len(c.Agents) != 1 || c.Agents[0].Name != "scout" {
		t.Fatalf("filter config: %v\n%s", err, out)
	}
	var indented map[string]any
	if json.Unmarshal([]byte(out), &indented) != nil || !strings.Contains(out, "\n  \"version\": 1") {
		t.Errorf("not indented JSON:\n%.200s", out)
	}
	if code, _, errOut := runEnv(t, map[string]string{"MESHGUARD_GATEWAY_URL": l.url}, "filter", "token"); code != 3 || !strings.Contains(errOut, "admin token") {
		t.Errorf("without an admin token: exit %d, %q", code, errOut)
	}
}
