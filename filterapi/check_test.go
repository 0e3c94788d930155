package filterapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
)

// a2aMessage is an A2A message/send of exactly size bytes.
func a2aMessage(size int) []byte {
	head := `{"jsonrpc":"2.0","id":7,"method":"message/send","params":{"message":{"role":"user","messageId":"m1","parts":[{"kind":"text","text":"`
	tail := `"}]}}}`
	return []byte(head + strings.Repeat("a", size-len(head)-len(tail)) + tail)
}

// TestFilterCheckCarriesTheBody: a request the filter defers from a route
// declaring a protocol reaches MeshGuard's engine with its body, up to
// agentproto.MaxBody (base64 in the check, read within
// filterprotocol.MaxCheckBytes), and is decided on it; the first
// MaxBody+1 bytes of a larger one (all the filter hands on of it) are the
// engine's 400, a longer body is refused with a 400 naming it, and a call
// without one is the engine's 400, not an allow.
func TestFilterCheckCarriesTheBody(t *testing.T) {
	env := filtertest.New(t)
	srv := env.API(t)
	tests := []struct {
		name    string
		body    []byte
		service string
		status  int // of the answer
		verdict int // of the verdict, when answered 200
		action  string
	}{
		{"an A2A message of MaxBody bytes", a2aMessage(agentproto.MaxBody), "planner", 200, 200, ""},
		{"a tool the policy denies", []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_paper"}}`), "papers", 200, 403, "call:papers/delete_paper"},
		{"no body", nil, "planner", 200, 400, ""},
		// What the filter hands on of a larger body: the engine's 400,
		// recorded (was: refused here unrecorded, a 503 at the filter).
		{"the first MaxBody+1 bytes of a larger body", a2aMessage(agentproto.MaxBody + 1), "planner", 200, 400, ""},
		{"a body over MaxBody+1", a2aMessage(agentproto.MaxBody + 2), "planner", 400, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proto := agentproto.A2A
			if tt.service == "papers" {
				proto = agentproto.MCP
			}
			dc := filterprotocol.DeferredCheck{
				Method: "POST", Host: tt.service + ".mesh", Path: "/", Token: env.ToolT,
				Headers:       [][2]string{{"content-type", "application/json"}},
				RouteProtocol: proto, RouteService: tt.service, Body: tt.body,
			}
			body, err := json.Marshal(dc)
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+filterprotocol.CheckPath, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(filterprotocol.HeaderFilterToken, filtertest.FilterCredential)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			if tt.status != 200 {
				var e struct{ Message string }
				if err := json.NewDecoder(res.Body).Decode(&e); err != nil || !strings.Contains(e.Message, "body") {
					t.Fatalf("message %q (%v): want it to name the body", e.Message, err)
				}
				return
			}
			var v filterprotocol.Verdict
			if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
				t.Fatal(err)
			}
			if v.Status != tt.verdict || v.Allowed != (tt.verdict == 200) {
				t.Fatalf("verdict %d allowed=%v (%s), want %d", v.Status, v.Allowed, v.Body, tt.verdict)
			}
			if v.Allowed && header(v.UpstreamHeaders, "x-meshguard-delegation") == "" {
				t.Fatalf("an A2A hop allowed without the delegation MeshGuard mints: %v", v.UpstreamHeaders)
			}
			if !v.Allowed && !strings.Contains(v.Body, `"jsonrpc":"2.0"`) || tt.action != "" && !strings.Contains(v.Body, tt.action) {
				t.Fatalf("deny body %s: want a JSON-RPC error naming %q", v.Body, tt.action)
			}
		})
	}
}

func header(hs [][2]string, name string) string {
	for _, kv := range hs {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}
