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
	agent := e.agent(t, "someone", trust.Verified, "emailer")
	bearer := map[string]string{"Authorization": "Bearer " + agent.Token, "Content-Type": "application/json"}
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		want                     string
	}{
		{"check: a key in another case", "POST", "/v1/check", `{"Action":"read:x"}`, bearer, `unknown field "Action" (field names are case-sensitive: did you mean "action"?)`},
		{"check: a key in capitals", "POST", "/v1/check", `{"action":"read:x","RESOURCE":"r"}`, bearer, `unknown field "RESOURCE"`},
		{"check: a repeated key", "POST", "/v1/check", `{"action":"read:x","action":"delete:x"}`, bearer, `duplicate key "action"`},
		{"check: a repeated key in the context", "POST", "/v1/check", `{"action":"read:x","context":{"to":"a","to":"b"}}`, bearer, `duplicate key "context.to"`},
		{"check: a repeated key deep in the context", "POST", "/v1/check", `{"action":"read:x","context":{"a":[{"b":1,"b":2}]}}`, bearer, `duplicate key "context.a[0].b"`},
		{"check: a key that is not UTF-8", "POST", "/v1/check", "{\"action\":\"read:x\",\"context\":{\"a\xff\":1,\"a\xfe\":2}}", bearer, "is not valid UTF-8"},
		{"check: an unknown key", "POST", "/v1/check", `{"action":"read:x","agent":"admin"}`, bearer, `unknown field "agent"`},
		{"check: context of the wrong type", "POST", "/v1/check", `{"action":"read:x","context":"to=a"}`, bearer, "context: expected an object, got string"},
		{"check: action of the wrong type", "POST", "/v1/check", `{"action":["read:x"]}`, bearer, "action: expected a string, got array"},
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
	// Nothing was created by any of it; exact keys still work.
	if list, _ := e.c.ListAgents(t.Context(), client.AgentFilter{}); len(list.Agents) != 1 {
		t.Fatalf("agents: %+v", list)
	}
	status, _, data := e.raw(t, "POST", "/v1/check", strings.NewReader(`{"action":"read:x","resource":"r","context":{"to":"a","To":"b"}}`), bearer)
	if status == http.StatusBadRequest {
		t.Fatalf("a body with exact keys (and context keys differing in case) was refused: %s", data)
	}
}
