package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/trust"
)

// TestStrictKeys: request bodies match field names exactly, case
// included, and each key appears once in its object — encoding/json alone
// takes {"Action":…} for "action" and keeps the last of two "action"s, so
// MeshGuard would decide on one reading of a body a log or proxy reads
// another way. Type errors say what was expected in JSON's words, never a
// Go type.
func TestStrictKeys(t *testing.T) {
	e := newEnv(t)
	e.agent(t, "someone", trust.Verified, "emailer")
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		want                     string
	}{
		{"create: a key in another case", "POST", "/admin/agents", `{"Name":"x"}`, adminHeaders(nil), `did you mean "name"?`},
		{"create: a repeated key", "POST", "/admin/agents", `{"name":"x","trustTier":"untrusted","trustTier":"privileged"}`, adminHeaders(nil), `duplicate key "trustTier"`},
		{"create: metadata of the wrong type", "POST", "/admin/agents", `{"name":"x","metadata":["a"]}`, adminHeaders(nil), "metadata: expected an object of strings, got array"},
		{"apply: a nested key in another case", "POST", "/admin/policies/validate", `{"files":[{"Name":"a","yaml":"name: a\n"}]}`, adminHeaders(nil), `unknown field "files[0].Name" (field names are case-sensitive: did you mean "name"?)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, data := e.raw(t, tc.method, tc.path, strings.NewReader(tc.body), tc.hdr)
			b := errorBody(t, data)
			if status != http.StatusBadRequest || !strings.Contains(b.Message, tc.want) || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s, want 400 mentioning %q", status, data, tc.want)
			}
			if strings.Contains(b.Message, "interface") || strings.Contains(b.Message, "map[") {
				t.Fatalf("the message shows a Go type: %s", b.Message)
			}
		})
	}
	// Nothing was created by any of it.
	if list, _ := e.c.ListAgents(t.Context(), client.AgentFilter{}); len(list.Agents) != 1 {
		t.Fatalf("agents: %+v", list)
	}
}
