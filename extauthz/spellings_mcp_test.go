package extauthz

import (
	"strconv"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/trust"
)

// rivalPolicy: researchers mail anyone but the rival, and read the lab's
// public files.
const rivalPolicy = `
name: lab
rules:
  - name: no-rival
    effect: deny
    actions: ["call:lab/send_email"]
    conditions: {context: {arguments.to: {matches: "*@rival.example"}}}
  - {name: lab-tools, effect: allow, actions: ["call:lab/*", "read:lab/file:///public/*"]}
`

// TestMCPSpellingsAtExtAuthz: the spellings of an MCP call that a server
// reads otherwise than MeshGuard did — an argument in another case, a
// rival hidden in a list, a resource URI with a dot-dot segment (in the
// body or in a header-only Mcp-Name) — are decided at a real gRPC Check
// as at the gateway: refused or denied, and recorded. Each was allowed.
func TestMCPSpellingsAtExtAuthz(t *testing.T) {
	f := enginetest.New(t, rivalPolicy, enginetest.Options{Now: fixedClock(), Answer: engine.AnswerAll})
	_, tok := f.Agent(t, "researcher", trust.Verified, []string{"researcher"})
	authz := startGRPC(t, f.Engine, testLog(t, nil))
	send := func(args string) string {
		return `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"send_email","arguments":` + args + `}}`
	}
	read := func(uri string) string {
		return `{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"` + uri + `"}}`
	}
	v26 := func(name string) map[string]string {
		return map[string]string{"mcp-method": "resources/read", "mcp-name": name, "mcp-protocol-version": "2026-07-28"}
	}
	for _, tc := range []struct {
		name    string
		body    string
		headers map[string]string
		status  int
		reason  string
	}{
		{"a recipient we mail", send(`{"to":"ann@ours.example"}`), nil, 200, ""},
		{"the rival", send(`{"to":"boss@rival.example"}`), nil, 403, "rule_deny"},
		{"the rival spelt To", send(`{"To":"boss@rival.example"}`), nil, 400, engine.ReasonBadRequest},
		{"the rival among good recipients", send(`{"to":["ann@ours.example","boss@rival.example"]}`), nil, 403, "rule_deny"},
		{"a public file", read("file:///public/report.txt"), nil, 200, ""},
		{"a secret behind a dot-dot segment", read("file:///public/../secrets/key"), nil, 400, engine.ReasonBadRequest},
		{"a secret behind an escaped dot-dot, header-only", "", v26("file:///public/%2E%2E/secrets/key"), 400, engine.ReasonBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := envoyCheck(call{method: "POST", host: "lab.mesh", path: "/mcp", token: tok, ext: labExt, headers: tc.headers})
			hr := req.Attributes.Request.Http
			if tc.body != "" {
				hr.RawBody = []byte(tc.body)
				hr.Headers[HeaderPartialBody] = "false"
				hr.Headers["content-length"] = strconv.Itoa(len(tc.body))
			}
			resp := check(t, authz, req)
			md := resp.GetDynamicMetadata().GetFields()
			status := 200
			if d := resp.GetDeniedResponse(); d != nil {
				status = int(d.GetStatus().GetCode())
			}
			if status != tc.status || md["reason"].GetStringValue() != tc.reason && tc.reason != "" {
				t.Fatalf("got %d %s (%s), want %d %s", status, md["reason"].GetStringValue(), resp.GetDeniedResponse().GetBody(), tc.status, tc.reason)
			}
			if rec := lastRecord(t, f); rec.DecisionID != md["decision_id"].GetStringValue() || rec.Status != tc.status {
				t.Fatalf("recorded %s %d, want decision %s %d", rec.DecisionID, rec.Status, md["decision_id"].GetStringValue(), tc.status)
			}
		})
	}
}
