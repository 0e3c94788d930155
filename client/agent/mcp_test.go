package agent_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/client/agent"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// mcpPolicy: a mailer may use the mail tools except delete_inbox.
const mcpPolicy = `
name: mailers
appliesTo: {tags: [mail]}
rules:
  - {name: no-delete, effect: deny, actions: ["call:mail/delete_*"]}
  - {name: mail-tools, effect: allow, actions: ["call:mail/*", "list:mail/*", "connect:mail"]}
`

// TestMCPClientGovernedInOneLine: an MCP client of the official Go SDK
// whose StreamableClientTransport takes the agent's HTTPClient reaches a
// real MCP server through the real gateway as that agent: the allowed
// tool is served, the denied one is refused and reaches no tool. Without
// it the gateway refuses the client outright.
func TestMCPClientGovernedInOneLine(t *testing.T) {
	f := enginetest.New(t, mcpPolicy, enginetest.Options{Routes: []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}})
	_, token := f.Agent(t, "mailer", trust.Verified, []string{"mail"})

	var sent, deleted atomic.Int32
	srv := mcp.NewServer(&mcp.Implementation{Name: "mail", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "send_email", Description: "send a mail"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			sent.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sent"}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "delete_inbox", Description: "delete every mail"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			deleted.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted"}}}, nil, nil
		})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(up.Close)
	target, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Checker: f.Engine, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	gwSrv := httptest.NewServer(gw)
	t.Cleanup(gwSrv.Close)
	endpoint := gwSrv.URL + "/proxy/mcp"

	a, err := agent.New(gwSrv.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	mc := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)

	// Without the agent's client: no token, no session.
	if cs, err := mc.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: base}, MaxRetries: -1,
	}, nil); err == nil {
		_ = cs.Close()
		t.Fatal("an MCP client without the agent's token was let in")
	}

	// The one line.
	cs, err := mc.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: a.HTTPClient(base), MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connecting through the gateway: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })

	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "send_email", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("send_email: %v %+v", err, res)
	}
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "delete_inbox", Arguments: map[string]any{}}); err == nil {
		t.Error("delete_inbox was not refused")
	}
	if sent.Load() != 1 || deleted.Load() != 0 {
		t.Errorf("tools served: send_email %d, delete_inbox %d; want 1 and 0", sent.Load(), deleted.Load())
	}
}
