package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// mcpPolicies: mail agents may use the mail service's tools, but delete
// nothing and send mail only to our domain; planners may message the
// planner and read its tasks, not cancel them.
const mcpPolicies = `
name: mail-agents
appliesTo: {tags: [mail]}
rules:
  - {name: no-delete, effect: deny, actions: ["call:*/delete_*"]}
  - name: outside-mail
    effect: deny
    actions: ["call:mail/send_email"]
    conditions: {context: {arguments.to: {not_matches: "*@ours.example"}}}
  - {name: mail-tools, effect: allow, actions: ["call:mail/*", "list:mail/*", "connect:mail"]}
  - {name: planner, effect: allow, actions: ["send:planner", "task:planner/get"]}
`

// mcpRoutes declare the protocols the upstream speaks.
var mcpRoutes = []engine.Route{
	{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"},
	{Path: "/a2a", Protocol: agentproto.A2A, Service: "planner"},
}

// mailServer is a real MCP server (the official Go SDK) with three tools;
// calls counts the calls each tool served.
type mailServer struct {
	calls map[string]*atomic.Int32
}

type sendArgs struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

func newMailServer(t testing.TB, jsonResponse bool) (*mailServer, *httptest.Server) {
	t.Helper()
	return serveMail(t, &mcp.StreamableHTTPOptions{JSONResponse: jsonResponse})
}

// serveMail serves the mail server's three tools with opts.
func serveMail(t testing.TB, opts *mcp.StreamableHTTPOptions) (*mailServer, *httptest.Server) {
	t.Helper()
	m := &mailServer{calls: map[string]*atomic.Int32{}}
	srv := mcp.NewServer(&mcp.Implementation{Name: "mail", Version: "1"}, nil)
	tool := func(name string) *atomic.Int32 {
		m.calls[name] = &atomic.Int32{}
		return m.calls[name]
	}
	sent, listed, deleted := tool("send_email"), tool("list_inbox"), tool("delete_inbox")
	mcp.AddTool(srv, &mcp.Tool{Name: "send_email", Description: "send a mail"},
		func(_ context.Context, _ *mcp.CallToolRequest, in sendArgs) (*mcp.CallToolResult, any, error) {
			sent.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sent to " + in.To}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "list_inbox", Description: "list the inbox"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			listed.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "3 mails"}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "delete_inbox", Description: "delete every mail"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			deleted.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted"}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, opts)
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	return m, up
}

// withToken sends every request with the agent's bearer token, as an
// agent's HTTP client configured for MeshGuard does.
type withToken struct {
	token string
	next  http.RoundTripper
}

func (w withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+w.token)
	return w.next.RoundTrip(r)
}

// connectMCP connects an MCP SDK client through the gateway.
func connectMCP(t *testing.T, endpoint, token string) *mcp.ClientSession {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: withToken{token, tr}}, MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatalf("connecting through the gateway: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// TestMCPThroughTheGateway: a real MCP client and server (the official Go
// SDK) with the gateway between them, answering in JSON and in event
// streams: the tool list the client sees holds what it may call; an
// allowed call is served; a denied tool and a refused argument reach no
// tool, come back as JSON-RPC errors the client reads, and the session
// keeps working; each call is in the audit trail under its tool.
func TestMCPThroughTheGateway(t *testing.T) {
	for _, mode := range []struct {
		name string
		json bool
	}{{"event stream answers", false}, {"JSON answers", true}} {
		t.Run(mode.name, func(t *testing.T) {
			f := enginetest.New(t, mcpPolicies, enginetest.Options{Routes: mcpRoutes})
			_, tok := f.Agent(t, "mailer", trust.Verified, []string{"mail"})
			mail, up := newMailServer(t, mode.json)
			gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
			cs := connectMCP(t, gw+"/proxy/mcp", tok)
			ctx := t.Context()

			tools, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatalf("ListTools: %v", err)
			}
			var names []string
			for _, tool := range tools.Tools {
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			if want := []string{"list_inbox", "send_email"}; !slices.Equal(names, want) {
				t.Errorf("ListTools through the gateway = %v, want %v (delete_inbox filtered out)", names, want)
			}
			// The server says "public"; the filtered list is this agent's.
			if tools.CacheScope != "private" {
				t.Errorf("the filtered list's cacheScope = %q, want private: a shared cache would serve it to other agents", tools.CacheScope)
			}

			steps := []struct {
				name, tool string
				args       map[string]any
				denied     bool
				rule       string
			}{
				{"allowed tool", "list_inbox", map[string]any{}, false, "mail-tools"},
				{"denied tool", "delete_inbox", map[string]any{}, true, "no-delete"},
				{"argument refused", "send_email", map[string]any{"to": "someone@elsewhere.example", "subject": "hi"}, true, "outside-mail"},
				{"allowed argument after the denials", "send_email", map[string]any{"to": "ann@ours.example", "subject": "hi"}, false, "mail-tools"},
			}
			for _, s := range steps {
				before := mail.calls[s.tool].Load()
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: s.tool, Arguments: s.args})
				served := mail.calls[s.tool].Load() - before
				if !s.denied {
					if err != nil || res.IsError || served != 1 {
						t.Fatalf("%s: CallTool(%s) = %v, %v; served %d times, want served once", s.name, s.tool, res, err, served)
					}
				} else {
					var rpcErr *jsonrpc.Error
					if !errors.As(err, &rpcErr) || rpcErr.Code != engine.RPCForbidden {
						t.Fatalf("%s: CallTool(%s) = %v, %v; want a JSON-RPC error %d", s.name, s.tool, res, err, engine.RPCForbidden)
					}
					if served != 0 {
						t.Fatalf("%s: the denied tool %s was served %d times", s.name, s.tool, served)
					}
				}
				rec := lastRecord(t, f)
				if want := "call:mail/" + s.tool; rec.Action != want || rec.Rule != s.rule || (rec.Status == 200) == s.denied {
					t.Fatalf("%s: recorded %s %d rule %q, want %s rule %q denied=%v", s.name, rec.Action, rec.Status, rec.Rule, want, s.rule, s.denied)
				}
			}
		})
	}
}

// lastRecord is the last decision the fixture's audit trail recorded.
func lastRecord(t *testing.T, f *enginetest.Fixture) audit.Record {
	t.Helper()
	var last audit.Record
	if err := f.Store.ScanAudit(context.Background(), func(r audit.Record) error { last = r; return nil }); err != nil {
		t.Fatal(err)
	}
	return last
}
