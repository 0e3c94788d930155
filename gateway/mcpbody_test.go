package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// rpcAnswer is a JSON-RPC error answer as a client reads it.
type rpcAnswer struct {
	ID    json.RawMessage `json:"id"`
	Error struct {
		Code int `json:"code"`
		Data struct {
			Reason     string `json:"reason"`
			DecisionID string `json:"decision_id"`
		} `json:"data"`
	} `json:"error"`
}

func readRPC(t *testing.T, r response) rpcAnswer {
	t.Helper()
	var a rpcAnswer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		t.Fatalf("answer %d %q is not JSON-RPC: %v", r.Status, r.Body, err)
	}
	return a
}

// bodyUpstream records the bodies it receives, with their framing, and
// answers each with answer (a JSON-RPC result if nil).
type bodyUpstream struct {
	mu   sync.Mutex
	got  []gotBody
	addr string
}

type gotBody struct {
	body          []byte
	contentLength int64
	chunked       bool
}

func newBodyUpstream(t *testing.T, answer http.HandlerFunc) *bodyUpstream {
	t.Helper()
	b := &bodyUpstream{}
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream: reading the body: %v", err)
		}
		b.mu.Lock()
		b.got = append(b.got, gotBody{body, r.ContentLength, len(r.TransferEncoding) > 0})
		b.mu.Unlock()
		if answer != nil {
			answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`)
	})
	b.addr = up.URL
	return b
}

func (b *bodyUpstream) take() []gotBody {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.got
	b.got = nil
	return g
}

// post sends body to the gateway's path; chunked hides its length, so
// that the client sends it chunked.
func post(t *testing.T, c *http.Client, url, tok string, body []byte, chunked bool) response {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = struct{ io.Reader }{rd}
	}
	req, err := http.NewRequest("POST", url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	return send(t, c, req)
}

// oversized is a tools/call one byte over agentproto.MaxBody.
func oversized() []byte {
	head := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_inbox","arguments":{"pad":"`
	tail := `"}}}`
	return []byte(head + strings.Repeat("x", agentproto.MaxBody+1-len(head)-len(tail)) + tail)
}

// TestProtocolBodiesDecidedAndForwardedExactly: the body of an MCP POST is
// decided on and forwarded byte for byte with its Content-Length, however
// it was framed; a body that cannot be decided on is a recorded 400 in
// JSON-RPC form and reaches no upstream.
func TestProtocolBodiesDecidedAndForwardedExactly(t *testing.T) {
	f := enginetest.New(t, mcpPolicies, enginetest.Options{Routes: mcpRoutes})
	_, tok := f.Agent(t, "mailer", trust.Verified, []string{"mail"})
	up := newBodyUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.addr)})
	c := newClient(t)
	allowed := []byte("{ \"jsonrpc\":\"2.0\", \"id\":1,\n \"method\":\"tools/call\",\"params\":{\"name\":\"send_email\",\"arguments\":{\"to\":\"ann@ours.example\"}}}\n")

	for _, chunked := range []bool{false, true} {
		res := post(t, c, gw+"/proxy/mcp", tok, allowed, chunked)
		got := up.take()
		if res.Status != 200 || len(got) != 1 {
			t.Fatalf("chunked=%v: status %d (%s), upstream got %d requests; want 200 and 1", chunked, res.Status, res.Body, len(got))
		}
		if !bytes.Equal(got[0].body, allowed) || got[0].contentLength != int64(len(allowed)) || got[0].chunked {
			t.Errorf("chunked=%v: upstream got %q (Content-Length %d, chunked %v), want the decided bytes with Content-Length %d",
				chunked, got[0].body, got[0].contentLength, got[0].chunked, len(allowed))
		}
	}

	for _, tc := range []struct {
		name    string
		body    []byte
		chunked bool
		reason  string
	}{
		{"not JSON", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call",`), false, "bad_request"},
		{"a batch", []byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_inbox"}}]`), false, "bad_request"},
		{"a duplicate name", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_inbox","name":"delete_inbox"}}`), false, "bad_request"},
		{"a name that is not a string", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["delete_inbox"]}}`), false, "bad_request"},
		{"an event stream where JSON is expected", []byte("data: {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n\n"), false, "bad_request"},
		{"one byte over the bound", oversized(), false, "bad_request"},
		{"one byte over the bound, chunked", oversized(), true, "bad_request"},
		{"no body", nil, false, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := post(t, c, gw+"/proxy/mcp", tok, tc.body, tc.chunked)
			a := readRPC(t, res)
			if res.Status != 400 || a.Error.Code != engine.RPCInvalidRequest || a.Error.Data.Reason != tc.reason {
				t.Fatalf("status %d, error %d reason %q; want 400, %d %s: %s", res.Status, a.Error.Code, a.Error.Data.Reason, engine.RPCInvalidRequest, tc.reason, res.Body)
			}
			if got := up.take(); len(got) != 0 {
				t.Fatalf("the upstream received %d requests", len(got))
			}
			if rec := lastRecord(t, f); rec.DecisionID != a.Error.Data.DecisionID || rec.Status != 400 || rec.Reason != tc.reason {
				t.Fatalf("not recorded: last record %s %d %s, answer's decision %s", rec.DecisionID, rec.Status, rec.Reason, a.Error.Data.DecisionID)
			}
		})
	}
}

// TestTruncatedBodyIsNotForwarded: a caller that stops sending the body it
// announced gets a 400, and nothing reaches the upstream.
func TestTruncatedBodyIsNotForwarded(t *testing.T) {
	f := enginetest.New(t, mcpPolicies, enginetest.Options{Routes: mcpRoutes})
	_, tok := f.Agent(t, "mailer", trust.Verified, []string{"mail"})
	up := newBodyUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.addr)})
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_inbox"}}`
	for _, tc := range []struct{ name, request string }{
		{"shorter than its Content-Length", "POST /proxy/mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n" + call},
		{"a chunked body without its last chunk", "POST /proxy/mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strconv.FormatInt(int64(len(call)), 16) + "\r\n" + call + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(gw, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(conn, tc.request); err != nil {
				t.Fatal(err)
			}
			// The caller stops sending; the gateway reads the end of the
			// stream where the rest of the body should be.
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			// The answer comes after the gateway would have forwarded.
			if got := up.take(); res.StatusCode != 400 || len(got) != 0 {
				t.Fatalf("status %d, upstream got %d requests; want 400 and none", res.StatusCode, len(got))
			}
		})
	}
}

// TestUnreadableListIsNotPassedOn: an answer to tools/list the gateway
// cannot filter is a 502 in JSON-RPC form to the request's id, never the
// list unfiltered.
func TestUnreadableListIsNotPassedOn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ct, body string
		encoding string
	}{
		{"HTML", "text/html", `<p>tools: delete_inbox</p>`, ""},
		{"truncated JSON", "application/json", `{"jsonrpc":"2.0","id":"l-1","result":{"tools":[{"name":"delete_inbox"}`, ""},
		{"a duplicate key", "application/json", `{"jsonrpc":"2.0","id":"l-1","result":{"tools":[],"tools":[{"name":"delete_inbox"}]}}`, ""},
		{"compressed", "application/json", `{"jsonrpc":"2.0","id":"l-1","result":{"tools":[{"name":"delete_inbox"}]}}`, "gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := enginetest.New(t, mcpPolicies, enginetest.Options{Routes: mcpRoutes})
			_, tok := f.Agent(t, "mailer", trust.Verified, []string{"mail"})
			up := newBodyUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ct)
				if tc.encoding != "" {
					w.Header().Set("Content-Encoding", tc.encoding)
				}
				_, _ = io.WriteString(w, tc.body)
			})
			gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.addr)})
			res := post(t, newClient(t), gw+"/proxy/mcp", tok, []byte(`{"jsonrpc":"2.0","id":"l-1","method":"tools/list"}`), false)
			a := readRPC(t, res)
			if res.Status != 502 || string(a.ID) != `"l-1"` || a.Error.Code == 0 || bytes.Contains(res.Body, []byte("delete_inbox")) {
				t.Fatalf("answer %d %s; want a 502 JSON-RPC error to id \"l-1\" without the list", res.Status, res.Body)
			}
			if got := up.take(); len(got) != 1 {
				t.Fatalf("the upstream got %d requests, want the list request", len(got))
			}
		})
	}
}

// TestA2AThroughTheGateway: an A2A JSON-RPC message is decided as send:S,
// a task method as task:S/<verb>; a denial is a JSON-RPC error and goes
// nowhere.
func TestA2AThroughTheGateway(t *testing.T) {
	f := enginetest.New(t, mcpPolicies, enginetest.Options{Routes: mcpRoutes})
	_, tok := f.Agent(t, "mailer", trust.Verified, []string{"mail"})
	up := newBodyUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.addr)})
	c := newClient(t)
	for _, tc := range []struct {
		name, body, action string
		status             int
	}{
		{"message/send allowed", `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"plan"}],"messageId":"m1","contextId":"c1"}}}`, "send:planner", 200},
		{"tasks/cancel denied", `{"jsonrpc":"2.0","id":2,"method":"tasks/cancel","params":{"id":"t1"}}`, "task:planner/cancel", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := post(t, c, gw+"/proxy/a2a", tok, []byte(tc.body), false)
			got := up.take()
			rec := lastRecord(t, f)
			if res.Status != tc.status || rec.Action != tc.action || rec.Status != tc.status {
				t.Fatalf("status %d, recorded %s %d; want %d %s", res.Status, rec.Action, rec.Status, tc.status, tc.action)
			}
			if tc.status != 200 {
				if a := readRPC(t, res); a.Error.Code != engine.RPCForbidden || string(a.ID) != "2" || len(got) != 0 {
					t.Fatalf("denial %s, upstream got %d requests; want JSON-RPC %d to id 2 and none", res.Body, len(got), engine.RPCForbidden)
				}
			} else if len(got) != 1 || string(got[0].body) != tc.body {
				t.Fatalf("upstream got %d requests, want the body as sent", len(got))
			}
		})
	}
}
