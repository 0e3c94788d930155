package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// blocklistPolicies: mail agents may send mail, except to a rival — a deny
// rule naming what is refused (matches), as blocklists are written.
const blocklistPolicies = `
name: mail-agents
appliesTo: {tags: [mail]}
rules:
  - name: no-rival
    effect: deny
    actions: ["call:mail/send_email"]
    conditions: {context: {arguments.to: {matches: "*@rival.example"}}}
  - {name: mail-tools, effect: allow, actions: ["call:mail/*", "list:mail/*", "connect:mail"]}
`

// newBindingMailServer is a real MCP server (the official Go SDK) whose
// send_email binds its arguments with Go's encoding/json, as a handler
// added with Server.AddTool does: "To" is its to field. sent receives each
// recipient it sends to.
func newBindingMailServer(t *testing.T) (sent func() []string, url string) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []string
	)
	srv := mcp.NewServer(&mcp.Implementation{Name: "mail", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "send_email", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var in struct {
				To any `json:"to"` // one recipient or a list
			}
			if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
				return nil, err
			}
			mu.Lock()
			got = append(got, fmt.Sprint(in.To))
			mu.Unlock()
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint("sent to ", in.To)}}}, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}, up.URL
}

// TestArgumentSpeltInAnotherCase: an SDK client sends send_email to the
// rival among good recipients (a deny rule's condition holds when some
// element of a list holds it), or with its argument spelt "To". The server binds it as to and sent
// the mail, while the deny rule, reading arguments.to, found nothing and
// the call was allowed. Now the call is refused (400, a recorded denial)
// and no mail leaves; the exact spelling is decided as before.
func TestArgumentSpeltInAnotherCase(t *testing.T) {
	f := enginetest.New(t, blocklistPolicies, enginetest.Options{Routes: mcpRoutes})
	_, tok := f.Agent(t, "mailer", trust.Verified, []string{"mail"})
	sent, up := newBindingMailServer(t)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up)})
	cs := connectMCP(t, gw+"/proxy/mcp", tok)

	for _, tc := range []struct {
		name   string
		args   map[string]any
		code   int64 // 0: served
		status int
	}{
		{"allowed recipient", map[string]any{"to": "ann@ours.example"}, 0, 200},
		{"the rival, spelt as the rule reads it", map[string]any{"to": "boss@rival.example"}, engine.RPCForbidden, 403},
		{"the rival among good recipients", map[string]any{"to": []any{"ann@ours.example", "boss@rival.example"}}, engine.RPCForbidden, 403},
		{"good recipients only", map[string]any{"to": []any{"ann@ours.example", "bob@ours.example"}}, 0, 200},
		{"the rival, spelt To", map[string]any{"To": "boss@rival.example"}, engine.RPCInvalidRequest, 400},
		{"the rival, spelt TO", map[string]any{"TO": "boss@rival.example"}, engine.RPCInvalidRequest, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(sent())
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "send_email", Arguments: tc.args})
			after := sent()
			var rpcErr *jsonrpc.Error
			switch {
			case tc.code == 0 && (err != nil || res.IsError || len(after) != before+1):
				t.Fatalf("CallTool = %v, %v; sent %v, want it served", res, err, after[before:])
			case tc.code != 0 && len(after) != before:
				t.Fatalf("the mail was sent to %v: the denied call reached the tool", after[before:])
			case tc.code != 0 && (!errors.As(err, &rpcErr) || rpcErr.Code != tc.code):
				t.Fatalf("CallTool = %v, %v; want a JSON-RPC error %d", res, err, tc.code)
			}
			if rec := lastRecord(t, f); rec.Action != "call:mail/send_email" || rec.Status != tc.status {
				t.Fatalf("recorded %s %d, want call:mail/send_email %d", rec.Action, rec.Status, tc.status)
			}
		})
	}
}
