package filter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
)

// toolList is the upstream's answer to tools/list (id 7) on papers: one
// tool ToolPolicies allow, one they deny, one no rule names, and a cursor.
const toolList = `{"jsonrpc":"2.0","id":7,"result":{"tools":[` +
	`{"name":"search_papers","inputSchema":{"type":"object"}},` +
	`{"name":"delete_paper","inputSchema":{"type":"object"}},` +
	`{"name":"rename_paper","inputSchema":{"type":"object"}}],"nextCursor":"c2"}}`

// listCase is the protocol table's allowed tools/list, and the server's
// decision of it (its Permits filter the gateway's lists).
func listCase(t testing.TB, env *filtertest.Env) (filtertest.ProtocolCase, engine.Decision) {
	t.Helper()
	for _, c := range env.ProtocolCases() {
		if c.Action != "list:papers/tools" {
			continue
		}
		sr, bad := env.ServerRequest(&c)
		if bad != "" {
			t.Fatal(bad)
		}
		d, err := env.F.Engine.Check(context.Background(), &sr)
		if err != nil || !d.Allowed || d.Call == nil || !d.Call.Lists() {
			t.Fatalf("the server decided the tool list %d %s (%v): want an allowed list", d.Status, d.Reason, err)
		}
		return c, d
	}
	t.Fatal("the protocol table has no tools/list")
	panic("unreachable")
}

// answer is an upstream response: headers, body chunks (the last sent
// with end of stream unless trailers follow).
type answer struct {
	headers  [][2]string
	chunks   [][]byte
	trailers bool
}

// respond hands the filter the upstream's answer to context id and
// returns the action of the last callback.
func (e *emu) respond(id uint32, a answer) types.Action {
	e.t.Helper()
	act := e.host.CallOnResponseHeaders(id, a.headers, len(a.chunks) == 0 && !a.trailers)
	for i, c := range a.chunks {
		if e.host.GetSentLocalResponse(id) != nil {
			return act
		}
		act = e.host.CallOnResponseBody(id, c, i == len(a.chunks)-1 && !a.trailers)
	}
	if a.trailers && e.host.GetSentLocalResponse(id) == nil {
		act = e.host.CallOnResponseTrailers(id, [][2]string{{"x-end", "1"}})
	}
	return act
}

// listRequest sends the allowed tools/list with Accept-Encoding: gzip and
// checks it went upstream without it.
func (e *emu) listRequest(c *filtertest.ProtocolCase) uint32 {
	e.t.Helper()
	hdrs := append(c.HeaderMap(), [2]string{"accept-encoding", "gzip"})
	o, _ := e.sendBody(hdrs, c.Body)
	if o.local != nil || o.action != types.ActionContinue {
		e.t.Fatalf("the tool list was not let through: action %v, answer %+v", o.action, o.local)
	}
	if ae, ok := o.up["accept-encoding"]; ok {
		e.t.Fatalf("accept-encoding %q went upstream: the answer could come back compressed", ae)
	}
	return o.id
}

// halves splits b in two chunks.
func halves(b []byte) [][]byte { return [][]byte{b[:len(b)/2], b[len(b)/2:]} }

// toolNames are the tool names of a JSON-RPC tools/list answer.
func toolNames(t *testing.T, body []byte) []string {
	t.Helper()
	var r struct {
		Result struct {
			Tools []struct{ Name string }
		}
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	var names []string
	for _, tl := range r.Result.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// TestListAnswersAreFiltered: the answer to an allowed tools/list the
// filter decided, natively and compiled, comes back holding only the tools
// the caller may call, as the server's decision permits them (the
// gateway's filter), in JSON and in an event stream, the rest of the
// answer as sent; its headers are held until then and lose their
// content-length. An answer that is not a list (an error status) passes
// as sent.
func TestListAnswersAreFiltered(t *testing.T) {
	env := filtertest.New(t)
	c, d := listCase(t, env)
	event := []byte(": priming\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\nevent: message\nid: 1\ndata: " + toolList + "\n\n")
	cases := []struct {
		name, contentType, status string
		body                      []byte
		filtered                  bool
	}{
		{"JSON", "application/json", "200", []byte(toolList), true},
		{"event stream", "text/event-stream", "200", event, true},
		{"an error status passes as sent", "text/html", "500", []byte("<html>upstream broke</html>"), false},
	}
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					id := e.listRequest(&c)
					hdrs := [][2]string{{":status", tc.status}, {"content-type", tc.contentType}, {"content-length", fmt.Sprint(len(tc.body))}}
					if a := e.host.CallOnResponseHeaders(id, hdrs, false); (a == types.ActionPause) != tc.filtered {
						t.Fatalf("response headers: action %v; holding them: %v", a, tc.filtered)
					}
					ch := halves(tc.body)
					if a := e.host.CallOnResponseBody(id, ch[0], false); (a == types.ActionPause) != tc.filtered {
						t.Fatalf("first chunk: action %v; buffering: %v", a, tc.filtered)
					}
					if a := e.host.CallOnResponseBody(id, ch[1], true); a != types.ActionContinue {
						t.Fatalf("end of the answer: action %v, local answer %+v", a, e.host.GetSentLocalResponse(id))
					}
					if l := e.host.GetSentLocalResponse(id); l != nil {
						t.Fatalf("answered %d %s instead of the upstream", l.StatusCode, l.Data)
					}
					got := e.host.GetCurrentResponseBody(id)
					if !tc.filtered {
						if !bytes.Equal(got, ch[1]) { // the emulator keeps the last chunk of an answer not buffered
							t.Fatalf("the answer was changed: %q", got)
						}
						return
					}
					want, err := agentproto.FilterList(*d.Call, tc.body, tc.contentType, d.Permits)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("the filter's list and the gateway's differ\nfilter:  %q\ngateway: %q", got, want)
					}
					resp := got
					if tc.contentType == "text/event-stream" {
						i := bytes.LastIndex(got, []byte("data: "))
						resp = bytes.TrimSpace(got[i+len("data: "):])
						if !bytes.Contains(got, []byte("notifications/progress")) {
							t.Fatalf("the server's notification was dropped: %q", got)
						}
					}
					if names := toolNames(t, resp); !slices.Equal(names, []string{"search_papers"}) {
						t.Fatalf("tools listed: %v; ToolPolicies allow search_papers only", names)
					}
					if !bytes.Contains(resp, []byte(`"nextCursor":"c2"`)) {
						t.Fatalf("the cursor was lost: %q", resp)
					}
					if cl := header(e.host.GetCurrentResponseHeaders(id), "content-length"); cl != "" {
						t.Fatalf("content-length %s kept on a rewritten body", cl)
					}
				})
			}
		})
	}
}

// checkListRefusal checks that the caller got the 502 JSON-RPC error for
// the list request (JSON-RPC id rpcID), with the decision's headers, and
// no list.
func checkListRefusal(t *testing.T, e *emu, id uint32, rpcID string) {
	t.Helper()
	l := e.host.GetSentLocalResponse(id)
	if l == nil {
		t.Fatalf("no answer of the filter's: the upstream's went on (action %v, body %q)", e.host.GetCurrentHttpStreamAction(id), e.host.GetCurrentResponseBody(id))
	}
	if l.StatusCode != 502 || header(l.Headers, "content-type") != "application/json" || header(l.Headers, "x-meshguard-decision") != "allow" {
		t.Fatalf("answered %d %v %q; want a 502 in JSON with the decision's headers", l.StatusCode, l.Headers, l.Data)
	}
	var rpc struct {
		JSONRPC string
		ID      json.RawMessage
		Error   struct{ Code int }
	}
	if err := json.Unmarshal(l.Data, &rpc); err != nil || rpc.JSONRPC != "2.0" || string(rpc.ID) != rpcID || rpc.Error.Code != -32052 {
		t.Fatalf("%q (%v): want a JSON-RPC error -32052 to id %s", l.Data, err, rpcID)
	}
}

// TestUnfilterableListsAreRefused: an answer to an allowed list request
// that cannot be filtered is replaced by a 502 JSON-RPC error, natively
// and compiled: never passed on unfiltered. An answer over the bound is
// refused before its end, a compressed one at its headers.
func TestUnfilterableListsAreRefused(t *testing.T) {
	env := filtertest.New(t)
	c, _ := listCase(t, env)
	ok := func(ct string) [][2]string { return [][2]string{{":status", "200"}, {"content-type", ct}} }
	over := make([][]byte, 0, 9)
	for range agentproto.MaxListResponse / (1 << 20) {
		over = append(over, bytes.Repeat([]byte(" "), 1<<20))
	}
	over = append(over, []byte("x"), []byte(toolList)) // the last chunk is never reached
	cases := []struct {
		name string
		a    answer
	}{
		{"unreadable JSON", answer{headers: ok("application/json"), chunks: halves([]byte(toolList[:len(toolList)-9]))}},
		{"a duplicate key", answer{headers: ok("application/json"), chunks: [][]byte{[]byte(`{"jsonrpc":"2.0","id":7,"result":{"tools":[]},"result":{"tools":[{"name":"delete_paper"}]}}`)}}},
		{"the answer to another id", answer{headers: ok("application/json"), chunks: [][]byte{[]byte(strings.Replace(toolList, `"id":7`, `"id":"7"`, 1))}}},
		{"another media type", answer{headers: ok("text/html"), chunks: [][]byte{[]byte(toolList)}}},
		{"no content type", answer{headers: [][2]string{{":status", "200"}}, chunks: [][]byte{[]byte(toolList)}}},
		{"gzip", answer{headers: append(ok("application/json"), [2]string{"content-encoding", "gzip"}), chunks: [][]byte{[]byte("\x1f\x8b")}}},
		{"no body", answer{headers: ok("application/json")}},
		{"trailers", answer{headers: ok("application/json"), chunks: [][]byte{[]byte(toolList)}, trailers: true}},
		{"over the bound", answer{headers: ok("application/json"), chunks: over}},
	}
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					id := e.listRequest(&c)
					e.respond(id, tc.a)
					checkListRefusal(t, e, id, "7")
					switch tc.name {
					case "gzip":
						if b := e.host.GetCurrentResponseBody(id); b != nil {
							t.Fatalf("the body was read (%q): a compressed answer is refused at its headers", b)
						}
					case "over the bound":
						if n := len(e.host.GetCurrentResponseBody(id)); n != agentproto.MaxListResponse+1 {
							t.Fatalf("refused after %d bytes; want as soon as it is over the bound (%d)", n, agentproto.MaxListResponse+1)
						}
					}
				})
			}
		})
	}
}

// TestDeferredListsAreRefused: a list request the filter defers to
// MeshGuard (here: an HS256 token) is allowed by MeshGuard's verdict,
// which cannot say which tools the caller may call; the filter answers
// the 502 JSON-RPC error rather than let an unfiltered list through,
// whether the body or the 2026-07-28 headers say tools/list. A deferred
// tool call, allowed, goes on.
func TestDeferredListsAreRefused(t *testing.T) {
	env := filtertest.New(t)
	list, _ := listCase(t, env)
	var call filtertest.ProtocolCase
	for _, c := range env.ProtocolCases() {
		if c.Action == "call:papers/search_papers" && c.Status == 200 {
			call = c
		}
	}
	// The same list asked for by the 2026-07-28 headers alone, no body.
	headerOnly := list
	headerOnly.Body = nil
	headerOnly.Headers = append(append([][2]string{}, list.Headers...),
		[2]string{agentproto.HeaderMCPMethod, "tools/list"}, [2]string{agentproto.HeaderMCPVersion, agentproto.HeaderRevision})
	cfg := append([]byte(`{"hs256":true,`), env.Config()[1:]...)
	// An HS256 token the filter defers without verifying it (it holds no
	// secret); MeshGuard's verdict is the server's decision of the same
	// request with the agent's own token.
	hs := "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + strings.Split(env.ToolT, ".")[1] + ".c2lnbmF0dXJl"
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, cfg)
			if e.status != types.OnPluginStartStatusOK {
				t.Fatal("the configuration was refused")
			}
			for _, tc := range []struct {
				name    string
				c       filtertest.ProtocolCase
				refused bool
			}{{"tools/list", list, true}, {"tools/list in headers only", headerOnly, true}, {"tools/call", call, false}} {
				t.Run(tc.name, func(t *testing.T) {
					sr, _ := env.ServerRequest(&tc.c)
					d, err := env.F.Engine.Check(context.Background(), &sr)
					if err != nil || !d.Allowed {
						t.Fatalf("the server decided %d %s (%v)", d.Status, d.Reason, err)
					}
					hdrs := tc.c.HeaderMap()
					for i := range hdrs {
						if hdrs[i][0] == "authorization" {
							hdrs[i][1] = hs
						}
					}
					o, _ := e.sendBody(hdrs, tc.c.Body)
					calls := e.callouts(o.id)
					if len(calls) != 1 {
						t.Fatalf("%d calls to MeshGuard; want the request deferred", len(calls))
					}
					v, err := json.Marshal(filterprotocol.NewVerdict(&d))
					if err != nil {
						t.Fatal(err)
					}
					e.answered[o.id]++
					e.reply(calls[0].CalloutID, 200, v)
					if !tc.refused {
						if l := e.host.GetSentLocalResponse(o.id); l != nil || e.host.GetCurrentHttpStreamAction(o.id) != types.ActionContinue {
							t.Fatalf("an allowed deferred call was not resumed: %+v", l)
						}
						return
					}
					rpcID := "7"
					if tc.c.Body == nil {
						rpcID = "null" // the headers carry no id
					}
					checkListRefusal(t, e, o.id, rpcID)
				})
			}
		})
	}
}
