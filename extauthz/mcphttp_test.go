package extauthz

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/trust"
)

// TestMCPHTTPService: Envoy's HTTP ext_authz service sends the original
// body as the check request's (with_request_body) and cannot pass
// context_extensions, so the protocol comes from the config's routes:
// a route declaring MCP is decided on the body, whole or refused; a route
// declaring none ignores it.
func TestMCPHTTPService(t *testing.T) {
	f := enginetest.New(t, labPolicy, enginetest.Options{Now: fixedClock(), Answer: engine.AnswerAll, Routes: []engine.Route{
		{Path: "/mcp", Protocol: agentproto.MCP, Service: "lab"},
	}})
	_, tok := f.Agent(t, "researcher", trust.Verified, []string{"researcher"})
	srv := startHTTP(t, f.Engine, testLog(t, nil))
	search := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_papers","arguments":{"query":"x"}}}`
	del := `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_paper","arguments":{"id":"p-1"}}}`

	tests := []struct {
		name, path, body string
		headers          map[string]string
		status           int
		reason, action   string
		rpc              bool // the denial is a JSON-RPC error
	}{
		{"an allowed tool", "/mcp", search, nil, 200, "", "call:lab/search_papers", false},
		{"a denied tool", "/mcp", del, nil, 403, "rule_deny", "call:lab/delete_paper", true},
		{"a refused argument", "/mcp", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"eve@evil.example"}}}`, nil, 403, "rule_deny", "call:lab/send_email", true},
		{"a body Envoy marks partial", "/mcp", search, map[string]string{HeaderPartialBody: "true"}, 400, engine.ReasonBadRequest, "", true},
		{"a batch", "/mcp", "[" + search + "]", map[string]string{HeaderPartialBody: "false"}, 400, engine.ReasonBadRequest, "", true},
		{"header-only (Envoy sent no body)", "/mcp", "", map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "search_papers", "Mcp-Protocol-Version": agentproto.HeaderRevision}, 200, "", "call:lab/search_papers", false},
		{"a route declaring no protocol ignores the body", "/outbox", del, nil, 403, "no_matching_rule", "write:outbox", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+PathPrefix+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "lab.mesh"
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, raw, tc.status)
			}
			rec := lastRecord(t, f)
			if rec.Status != tc.status || tc.action != "" && rec.Action != tc.action || tc.reason != "" && rec.Reason != tc.reason {
				t.Fatalf("recorded %d %s %q, want %d %s %q", rec.Status, rec.Reason, rec.Action, tc.status, tc.reason, tc.action)
			}
			if tc.status == 200 {
				return
			}
			if !tc.rpc {
				if b := decodeBody(t, raw); b.DecisionID != rec.DecisionID {
					t.Fatalf("deny body %s, want decision %s", raw, rec.DecisionID)
				}
				return
			}
			var rpc struct {
				JSONRPC string `json:"jsonrpc"`
				Error   struct {
					Code int64 `json:"code"`
					Data body  `json:"data"`
				} `json:"error"`
			}
			if err := json.Unmarshal(raw, &rpc); err != nil || rpc.JSONRPC != "2.0" || rpc.Error.Data.DecisionID != rec.DecisionID {
				t.Fatalf("deny body %s (%v): want a JSON-RPC error for decision %s", raw, err, rec.DecisionID)
			}
		})
	}
}
