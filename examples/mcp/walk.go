package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/cli"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/server"
)

type walkOptions struct {
	policies, config string
	// record, if set, receives what the walk saw (tests).
	record *walked
}

// walked is what the walk saw, for its test to check the story it tells.
type walked struct {
	offered, listed []string // papers' tools: the server's, and the researcher's list through MeshGuard
	calls           []call
	sent, papers    []string // the office afterwards
	out             string   // the walk's output
}

// call is one tool call as the walk printed it.
type call struct {
	agent, tool string
	denied      bool
	code        int64  // the JSON-RPC error's code, when denied
	rule        string // the rule that decided a denial
}

// runWalk starts the example MCP server and MeshGuard in front of it, walks
// two agents' MCP clients through the gateway, shows the audit trail, and
// stops both.
func runWalk(ctx context.Context, out io.Writer, o walkOptions) error {
	data, err := os.MkdirTemp("", "meshguard-mcp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)

	office := newOffice()
	up, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upstream := &http.Server{Handler: office.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = upstream.Serve(up) }()
	defer upstream.Close()
	upURL := "http://" + up.Addr().String()

	cfg, err := config.Load(o.config, os.Getenv, map[string]string{
		"data-dir": filepath.Join(data, "data"), "policies-dir": o.policies,
		"proxy-target": upURL, "log-level": "warn",
	})
	if err != nil {
		return err
	}
	// Ports the kernel picks: the walk never collides with a running serve.
	cfg.Port, cfg.GRPCPort = 0, 0
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(srvCtx, cfg, server.Options{Ready: ready, Announce: func(string) {}, Getenv: os.Getenv})
	}()
	var addrs server.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		return fmt.Errorf("starting MeshGuard: %w", err)
	}
	admin, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin-token"))
	if err != nil {
		return fmt.Errorf("reading the admin token: %w", err)
	}
	w := &walk{out: out, gateway: "http://" + addrs.HTTP, upstream: upURL, admin: strings.TrimSpace(string(admin)), office: office}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	w.transport = tr
	err = w.run(ctx)
	if o.record != nil {
		w.rec.sent, w.rec.papers = office.Sent(), office.Papers()
		*o.record = w.rec
	}
	stopServer()
	if serr := <-done; err == nil {
		err = serr
	}
	return err
}

type walk struct {
	out                      io.Writer
	gateway, upstream, admin string
	office                   *office
	transport                http.RoundTripper
	api                      *client.Client
	rec                      walked
}

func (w *walk) say(format string, args ...any) { fmt.Fprintf(w.out, format+"\n", args...) }

func (w *walk) run(ctx context.Context) error {
	mg, err := client.New(client.Config{BaseURL: w.gateway, AdminToken: w.admin})
	if err != nil {
		return err
	}
	w.api = mg
	tokens := map[string]string{}
	w.say("   MeshGuard's gateway forwards /proxy/* to the example MCP server; its routes say")
	w.say("   /mail/mcp and /papers/mcp speak MCP (examples/mcp/meshguard.yaml), so each call")
	w.say("   is decided as call:<service>/<tool> (examples/policies/mcp.yaml)")
	for _, a := range []struct{ name, tag string }{{"researcher", "researcher"}, {"emailer", "emailer"}} {
		got, err := mg.CreateAgent(ctx, api.CreateAgentRequest{Name: a.name, TrustTier: "verified", Tags: []string{a.tag}})
		if err != nil {
			return fmt.Errorf("creating %s: %w", a.name, err)
		}
		tokens[a.name] = got.Token
	}

	// The server's own list, asked directly, against what the researcher
	// is shown through MeshGuard.
	direct, err := w.connect(ctx, w.upstream+"/papers/mcp", "")
	if err != nil {
		return err
	}
	if w.rec.offered, err = toolNames(ctx, direct); err != nil {
		return err
	}
	_ = direct.Close()
	papers, err := w.connect(ctx, w.gateway+"/proxy/papers/mcp", tokens["researcher"])
	if err != nil {
		return err
	}
	defer papers.Close()
	if w.rec.listed, err = toolNames(ctx, papers); err != nil {
		return err
	}
	w.say("\n   papers serves the tools        %v", w.rec.offered)
	w.say("   the researcher's tools/list    %v  (filtered to what it may call)", w.rec.listed)

	w.say("")
	if err := w.call(ctx, papers, "researcher", "search_papers", map[string]any{"query": "agent", "limit": 5}); err != nil {
		return err
	}
	if err := w.call(ctx, papers, "researcher", "delete_paper", map[string]any{"id": "p2"}); err != nil {
		return err
	}
	w.say("         the library still holds %v", w.office.Papers())

	mail, err := w.connect(ctx, w.gateway+"/proxy/mail/mcp", tokens["emailer"])
	if err != nil {
		return err
	}
	defer mail.Close()
	if err := w.call(ctx, mail, "emailer", "send_email", map[string]any{"to": "ann@example.com", "subject": "papers on agents"}); err != nil {
		return err
	}
	if err := w.call(ctx, mail, "emailer", "send_email", map[string]any{"to": "eve@elsewhere.test", "subject": "papers on agents"}); err != nil {
		return err
	}
	w.say("         mail sent: %q", w.office.Sent())
	return w.audit(ctx)
}

// connect opens an MCP session with the official SDK's client; token, if
// set, goes on every request, as an agent's HTTP client set up for
// MeshGuard sends it.
func (w *walk) connect(ctx context.Context, endpoint, token string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1.0.0"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{token, w.transport}}, MaxRetries: -1,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	return cs, nil
}

func toolNames(ctx context.Context, cs *mcp.ClientSession) ([]string, error) {
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("tools/list: %w", err)
	}
	names := make([]string, 0, len(res.Tools))
	for _, t := range res.Tools {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	return names, nil
}

// call calls tool as agent and prints what came back: the tool's answer,
// or MeshGuard's denial as the JSON-RPC error the client reads.
func (w *walk) call(ctx context.Context, cs *mcp.ClientSession, agent, tool string, args map[string]any) error {
	a, _ := json.Marshal(args)
	w.say("   [mcp] %-10s calls %s %s", agent, tool, a)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	c := call{agent: agent, tool: tool}
	var rpcErr *jsonrpc.Error
	switch {
	case errors.As(err, &rpcErr):
		c.denied, c.code = true, rpcErr.Code
		c.rule = jsonField(rpcErr.Data, "policy") + "/" + jsonField(rpcErr.Data, "rule")
		w.say("         → DENY  JSON-RPC error %d %q (%s %s)", rpcErr.Code, rpcErr.Message, jsonField(rpcErr.Data, "reason"), c.rule)
	case err != nil:
		return fmt.Errorf("%s calls %s: %w", agent, tool, err)
	case res.IsError:
		return fmt.Errorf("%s calls %s: the tool failed: %s", agent, tool, resultText(res))
	default:
		w.say("         → ALLOW %s", resultText(res))
	}
	w.rec.calls = append(w.rec.calls, c)
	return nil
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}

// audit shows the tool calls in the audit trail, with the CLI.
func (w *walk) audit(ctx context.Context) error {
	// Records are written in groups every AUDIT_FLUSH_MS: wait for the calls.
	for deadline := time.Now().Add(10 * time.Second); ; {
		page, err := w.api.QueryAudit(ctx, client.AuditFilter{Action: "call:*", Limit: 100})
		if err != nil {
			return err
		}
		if len(page.Records) >= len(w.rec.calls) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d tool calls in the audit trail, want %d", len(page.Records), len(w.rec.calls))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var buf strings.Builder
	out := io.MultiWriter(w.out, &buf)
	env := map[string]string{"MESHGUARD_GATEWAY_URL": w.gateway, "MESHGUARD_ADMIN_TOKEN": w.admin}
	args := []string{"audit", "tail", "-n", fmt.Sprint(len(w.rec.calls)), "--action", "call:*"}
	w.say("\n== The tool calls in the audit trail (meshguard %s)", strings.Join(args, " "))
	if code := cli.Main(ctx, args, cli.Options{Stdout: out, Stderr: out, Getenv: func(k string) string { return env[k] }}); code != 0 {
		return fmt.Errorf("meshguard %s: exit %d", strings.Join(args, " "), code)
	}
	w.rec.out = buf.String()
	return nil
}

// bearer sends every request with the agent's bearer token.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}

// jsonField reads one string member of a JSON object ("" if absent).
func jsonField(data json.RawMessage, key string) string {
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}
