package agentproto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
)

// listCall is the tools/list (or prompts/list, resources/list) request
// with id 7 to service mail.
func listCall(t testing.TB, method string) agentproto.Call {
	t.Helper()
	c, err := agentproto.ParseMCP("mail", []byte(`{"jsonrpc":"2.0","id":7,"method":"`+method+`"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// keepOK permits the items whose name (or uri) starts with "ok".
func keepOK(action string) bool {
	return strings.HasPrefix(action, "call:mail/ok") || strings.HasPrefix(action, "get:mail/prompts/ok") ||
		strings.HasPrefix(action, "read:mail/ok")
}

func TestFilterList(t *testing.T) {
	for _, tc := range []struct {
		name, method, contentType, body, want string
	}{
		{"tools kept byte for byte, others and nextCursor as sent", "tools/list", "application/json",
			`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"ok_a","inputSchema":{"type":"object"}}, {"name":"delete"} ,{"name":"ok_b"}],"nextCursor":"c2"}}`,
			`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"ok_a","inputSchema":{"type":"object"}},{"name":"ok_b"}],"nextCursor":"c2"}}`},
		{"prompts by name", "prompts/list", "application/json; charset=utf-8",
			`{"jsonrpc":"2.0","id":7,"result":{"prompts":[{"name":"no"},{"name":"ok"}]}}`,
			`{"jsonrpc":"2.0","id":7,"result":{"prompts":[{"name":"ok"}]}}`},
		{"resources by uri", "resources/list", "application/json",
			`{"jsonrpc":"2.0","id":7,"result":{"resources":[{"uri":"ok://1","name":"x"},{"uri":"secret://2","name":"ok"}]}}`,
			`{"jsonrpc":"2.0","id":7,"result":{"resources":[{"uri":"ok://1","name":"x"}]}}`},
		{"items without a valid name dropped", "tools/list", "application/json",
			`{"jsonrpc":"2.0","id":7,"result":{"tools":[1,{"name":5},{"title":"ok"},{"name":"ok x"},{"name":"ok"}]}}`,
			`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"ok"}]}}`},
		{"everything refused: an empty list", "tools/list", "application/json",
			`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"no"}]}}`,
			`{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}`},
		// A filtered list is this caller's: MCP 2026-07-28's cacheScope
		// "public" would let a shared cache serve it to another caller.
		{"a public cacheScope made private", "tools/list", "application/json",
			`{"jsonrpc":"2.0","id":7,"result":{"ttlMs":60000,"cacheScope": "public" ,"tools":[{"name":"no"},{"name":"ok"}]}}`,
			`{"jsonrpc":"2.0","id":7,"result":{"ttlMs":60000,"cacheScope": "private" ,"tools":[{"name":"ok"}]}}`},
		{"a cacheScope after the list, in another case", "prompts/list", "application/json",
			`{"jsonrpc":"2.0","id":7,"result":{"prompts":[{"name":"no"}],"CacheScope":"public"}}`,
			`{"jsonrpc":"2.0","id":7,"result":{"prompts":[],"CacheScope":"private"}}`},
		{"an error answer as sent", "tools/list", "application/json",
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"no tools"}}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"no tools"}}`},
		{"event stream: the response filtered, other events as sent", "tools/list", "text/event-stream",
			"id: 0\n\n: comment\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"tools\":[{\"name\":\"no\"}]}}\n\n" +
				"event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\r\ndata: \"result\":{\"tools\":[{\"name\":\"no\"},{\"name\":\"ok\"}]}}\r\n\r\n",
			"id: 0\n\n: comment\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"tools\":[{\"name\":\"no\"}]}}\n\n" +
				"event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\r\ndata: \"result\":{\"tools\":[{\"name\":\"ok\"}]}}\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := agentproto.FilterList(listCall(t, tc.method), []byte(tc.body), tc.contentType, keepOK)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("FilterList =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestFilterListRefuses: what cannot be read is refused, never passed on.
func TestFilterListRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, body string
	}{
		{"not JSON", "application/json", `{"jsonrpc":"2.0","id":7,"result":{"tools":[`},
		{"a duplicate key", "application/json", `{"jsonrpc":"2.0","id":7,"result":{"tools":[],"tools":[{"name":"no"}]}}`},
		{"a case-folded duplicate key", "application/json", `{"jsonrpc":"2.0","id":7,"result":{"tools":[],"Tools":[{"name":"no"}]}}`},
		{"the answer to another request", "application/json", `{"jsonrpc":"2.0","id":8,"result":{"tools":[{"name":"no"}]}}`},
		// encoding/json, and so the Go SDK's client, reads "Tools" as tools.
		{"the list under another case", "application/json", `{"jsonrpc":"2.0","id":7,"result":{"Tools":[{"name":"no"}]}}`},
		{"tools not an array", "application/json", `{"jsonrpc":"2.0","id":7,"result":{"tools":{"name":"no"}}}`},
		{"no result", "application/json", `{"jsonrpc":"2.0","id":7}`},
		{"HTML", "text/html", `<html>tools</html>`},
		{"no media type", "", `{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}`},
		{"a bad event", "text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"no\"}\n\n"},
		{"a lone CR", "text/event-stream", "data: {}\rdata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"no\"}]}}\n\n"},
		// A POST's stream carries the answers to that POST's one request: a
		// client that reads "7" or 7.0 as 7 would take another id's list
		// as this one's.
		{"an event with another id", "text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":\"7\",\"result\":{\"tools\":[{\"name\":\"no\"}]}}\n\n"},
		{"an event with 7.0 for 7", "text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":7.0,\"result\":{\"tools\":[{\"name\":\"no\"}]}}\n\n"},
		{"an event both request and answer", "text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"x\",\"result\":{\"tools\":[{\"name\":\"no\"}]}}\n\n"},
		{"too large", "application/json", `{"jsonrpc":"2.0","id":7,"result":{"tools":[],"pad":"` + strings.Repeat("x", agentproto.MaxListResponse) + `"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := agentproto.FilterList(listCall(t, "tools/list"), []byte(tc.body), tc.contentType, keepOK)
			if !errors.Is(err, agentproto.ErrListResponse) || got != nil {
				t.Fatalf("FilterList = %q, %v; want ErrListResponse", got, err)
			}
		})
	}
}

// FuzzFilterList holds FilterList to an oracle: no panic; a refusal is
// ErrListResponse; an accepted answer parses (as JSON, or as events whose
// data a second reader, encoding/json, reads), and every item of the
// answer to this request in it is one keep permits.
func FuzzFilterList(f *testing.F) {
	f.Add(false, []byte(`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"ok_a"},{"name":"no"}],"nextCursor":"x"}}`))
	f.Add(true, []byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"no\"},{\"name\":\"ok\"}]}}\n\n"))
	f.Add(true, []byte("data: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\ndata: {\"jsonrpc\":\"2.0\",\n data: \"id\":7,\"result\":{\"tools\":[]}}\n"))
	call := listCall(f, "tools/list")
	f.Fuzz(func(t *testing.T, sse bool, body []byte) {
		ct := "application/json"
		if sse {
			ct = "text/event-stream"
		}
		out, err := agentproto.FilterList(call, body, ct, keepOK)
		if err != nil {
			if !errors.Is(err, agentproto.ErrListResponse) || out != nil {
				t.Fatalf("refusal %v is not ErrListResponse or came with %q", err, out)
			}
			return
		}
		if !sse {
			checkListed(t, out, true)
			return
		}
		for _, data := range eventData(out) {
			checkListed(t, data, false)
		}
	})
}

// checkListed fails the test if msg, read by encoding/json, is an answer
// — to any id: a lenient client may match "7" or 7.0 to 7 — listing a tool
// keepOK refuses. must: msg must be JSON.
func checkListed(t *testing.T, msg []byte, must bool) {
	t.Helper()
	var m struct {
		Method *string `json:"method"`
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
	}
	dec := json.NewDecoder(bytes.NewReader(msg))
	if err := dec.Decode(&m); err != nil {
		if must {
			t.Fatalf("the filtered answer %q does not parse: %v", msg, err)
		}
		return
	}
	if m.Method != nil {
		return // a request or notification of the server's: no answer
	}
	for _, tool := range m.Result.Tools {
		if !keepOK("call:mail/" + tool.Name) {
			t.Fatalf("the filtered answer %q lists %q", msg, tool.Name)
		}
	}
}

// eventData reads an event stream as a client does (LF, CRLF line ends)
// and returns each event's data.
func eventData(b []byte) [][]byte {
	var (
		out  [][]byte
		data []byte
		has  bool
	)
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			if has {
				out = append(out, data)
			}
			data, has = nil, false
		case bytes.HasPrefix(line, []byte("data")) && (len(line) == 4 || line[4] == ':'):
			v := bytes.TrimPrefix(bytes.TrimPrefix(line[4:], []byte(":")), []byte(" "))
			if has {
				data = append(data, '\n')
			}
			data, has = append(data, v...), true
		}
	}
	if has {
		out = append(out, data)
	}
	return out
}
