package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// TestResumedStreamDoesNotReplayAnUnfilteredList: an MCP server with an
// event store (the official Go SDK's) lets a client resume a POST's event
// stream with a GET carrying Last-Event-ID, and replays the events after
// it — the tools/list answer among them. That GET is no list request, so
// the answer would come back unfiltered: delete_inbox, hidden from the
// mailer's list, shown. MeshGuard refuses a resumption on an MCP route,
// records the refusal, and the list seen stays the filtered one.
func TestResumedStreamDoesNotReplayAnUnfilteredList(t *testing.T) {
	f := enginetest.New(t, mcpPolicies, enginetest.Options{Routes: mcpRoutes})
	_, tok := f.Agent(t, "mailer", trust.Verified, []string{"mail"})
	up := newResumableMailServer(t)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	c := newClient(t)
	endpoint := gw + "/proxy/mcp"

	// A session at 2025-11-25, whose event streams start with a priming
	// event carrying the id to resume from.
	init := mcpPost(t, c, endpoint, tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"agent","version":"1"}}}`)
	session := init.Header.Get("Mcp-Session-Id")
	if init.Status != http.StatusOK || session == "" {
		t.Fatalf("initialize: %d %q (session %q)", init.Status, init.Body, session)
	}
	if r := mcpPost(t, c, endpoint, tok, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.Status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %d %q", r.Status, r.Body)
	}

	list := mcpPost(t, c, endpoint, tok, session, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if list.Status != http.StatusOK || !bytes.Contains(list.Body, []byte("list_inbox")) || bytes.Contains(list.Body, []byte("delete_inbox")) {
		t.Fatalf("tools/list through the gateway: %d %q, want list_inbox and no delete_inbox", list.Status, list.Body)
	}
	prime := firstEventID(list.Body)
	if prime == "" {
		t.Fatalf("the list's event stream has no event id to resume from: %q", list.Body)
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	req.Header.Set("Last-Event-ID", prime)
	status, replayed := firstData(t, c, req)
	if strings.Contains(replayed, "delete_inbox") {
		t.Fatalf("a resumed stream replayed the unfiltered list: %d %q", status, replayed)
	}
	if status != http.StatusBadRequest {
		t.Fatalf("a resumption through the gateway: %d %q, want 400", status, replayed)
	}
	if rec := lastRecord(t, f); rec.Status != http.StatusBadRequest || rec.Method != http.MethodGet || rec.Reason == "" {
		t.Fatalf("the refused resumption is not the last record: %+v", rec)
	}
}

// newResumableMailServer is newMailServer's server, answering in event
// streams and keeping their events for resumption.
func newResumableMailServer(t *testing.T) *httptest.Server {
	t.Helper()
	_, up := serveMail(t, &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)})
	return up
}

// mcpPost posts one JSON-RPC message as an MCP client at 2025-11-25 does.
func mcpPost(t *testing.T, c *http.Client, url, tok, session, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	return send(t, c, req)
}

// firstEventID is the first id: field of an event stream.
func firstEventID(stream []byte) string {
	for line := range strings.Lines(string(stream)) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "id:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// firstData reads the answer to req up to its first non-empty data line
// (an event stream) or whole (any other answer), and closes it: a resumed
// stream stays open after its replay.
func firstData(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	res, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var all strings.Builder
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		all.WriteString(sc.Text() + "\n")
		if v, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.TrimSpace(v) != "" && strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
			break
		}
	}
	return res.StatusCode, all.String()
}
