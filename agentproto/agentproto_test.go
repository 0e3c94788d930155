package agentproto_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/internal/edge"
)

func TestParseMCPActions(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		h    edge.MapHeaders
		want agentproto.Call
		args map[string]any // what want.Arguments() decodes to
	}{
		{"tools/call (2025-06-18)", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"a@example.com","options":{"cc":["b@example.com"]}}}}`, nil,
			agentproto.Call{Method: "tools/call", Action: "call:mail/send_email", Name: "send_email", ID: "1"},
			map[string]any{"to": "a@example.com", "options": map[string]any{"cc": []any{"b@example.com"}}}},
		{"tools/call with a string id and _meta (2025-11-25)", `{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"search_papers","arguments":{"q":"x","n":12345678901234567890},"_meta":{"progressToken":7}}}`, nil,
			agentproto.Call{Method: "tools/call", Action: "call:mail/search_papers", Name: "search_papers", ID: `"1"`},
			map[string]any{"q": "x", "n": json.Number("12345678901234567890")}},
		{"tools/call with no arguments", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_inbox"}}`, nil,
			agentproto.Call{Method: "tools/call", Action: "call:mail/list_inbox", Name: "list_inbox", ID: "2"}, nil},
		{"tools/call with 2026-07-28 headers that agree", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"send_email","arguments":{}}}`,
			edge.MapHeaders{"Mcp-Method": " tools/call", "Mcp-Name": "send_email ", "Mcp-Session-Id": "abc-123"},
			agentproto.Call{Method: "tools/call", Action: "call:mail/send_email", Name: "send_email", ID: "3", SessionID: "abc-123"}, map[string]any{}},
		{"Mcp-Name base64-encoded (SEP-2243) agrees", `{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///café"}}`,
			edge.MapHeaders{"mcp-method": "resources/read", "mcp-name": "=?base64?ZmlsZTovLy9jYWbDqQ==?="},
			agentproto.Call{Method: "resources/read", Action: "read:mail/file:///café", Name: "file:///café", ID: "3"}, nil},
		{"resources/read", `{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"mail://inbox/1"}}`, nil,
			agentproto.Call{Method: "resources/read", Action: "read:mail/mail://inbox/1", Name: "mail://inbox/1", ID: "4"}, nil},
		{"prompts/get", `{"jsonrpc":"2.0","id":5,"method":"prompts/get","params":{"name":"summarise","arguments":{"style":"short"}}}`, nil,
			agentproto.Call{Method: "prompts/get", Action: "get:mail/prompts/summarise", Name: "summarise", ID: "5"}, map[string]any{"style": "short"}},
		{"tools/list", `{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"cursor":"x"}}`, nil,
			agentproto.Call{Method: "tools/list", Action: "list:mail/tools", ID: "6"}, nil},
		{"resources/list", `{"jsonrpc":"2.0","id":7,"method":"resources/list"}`, nil,
			agentproto.Call{Method: "resources/list", Action: "list:mail/resources", ID: "7"}, nil},
		{"resources/templates/list", `{"jsonrpc":"2.0","id":8,"method":"resources/templates/list"}`, nil,
			agentproto.Call{Method: "resources/templates/list", Action: "list:mail/resources", ID: "8"}, nil},
		{"prompts/list", `{"jsonrpc":"2.0","id":9,"method":"prompts/list"}`, nil,
			agentproto.Call{Method: "prompts/list", Action: "list:mail/prompts", ID: "9"}, nil},
		{"initialize", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`, nil,
			agentproto.Call{Method: "initialize", Action: "connect:mail", ID: "0"}, nil},
		{"ping", `{"jsonrpc":"2.0","id":10,"method":"ping"}`, nil,
			agentproto.Call{Method: "ping", Action: "connect:mail", ID: "10"}, nil},
		{"notifications/initialized", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil,
			agentproto.Call{Method: "notifications/initialized", Action: "connect:mail", Notification: true}, nil},
		{"notifications/cancelled", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`, nil,
			agentproto.Call{Method: "notifications/cancelled", Action: "connect:mail", Notification: true}, nil},
		{"another method", `{"jsonrpc":"2.0","id":11,"method":"completion/complete","params":{}}`, nil,
			agentproto.Call{Method: "completion/complete", Action: "mcp:mail/completion/complete", ID: "11"}, nil},
		{"resources/subscribe is another method", `{"jsonrpc":"2.0","id":12,"method":"resources/subscribe","params":{"uri":"mail://inbox"}}`, nil,
			agentproto.Call{Method: "resources/subscribe", Action: "mcp:mail/resources/subscribe", Name: "mail://inbox", ID: "12"}, nil},
		{"escaped keys and values are read as the upstream reads them", `{"jsonrpc":"2.0","id":13,"method":"tools\/call","params":{"n\u0061me":"send\u005femail"}}`, nil,
			agentproto.Call{Method: "tools/call", Action: "call:mail/send_email", Name: "send_email", ID: "13"}, nil},
		{"a negative fractional id keeps its text", `{"jsonrpc":"2.0","id":-1.5e3,"method":"ping"}`, nil,
			agentproto.Call{Method: "ping", Action: "connect:mail", ID: "-1.5e3"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h agentproto.Headers
			if tc.h != nil {
				h = tc.h
			}
			got, err := agentproto.ParseMCP("mail", []byte(tc.body), h)
			if err != nil {
				t.Fatalf("ParseMCP: %v", err)
			}
			want := tc.want
			want.Protocol, want.Service = agentproto.MCP, "mail"
			want.HasArguments = want.Method == "tools/call" || want.Method == "prompts/get"
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(agentproto.Call{}, "RawArguments"), cmpopts.IgnoreUnexported(agentproto.Call{})); diff != "" {
				t.Errorf("Call (-want +got):\n%s", diff)
			}
			args, err := got.Arguments()
			if err != nil {
				t.Fatalf("Arguments: %v", err)
			}
			if diff := cmp.Diff(tc.args, args); diff != "" {
				t.Errorf("Arguments (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseA2AActions(t *testing.T) {
	for _, tc := range []struct {
		name, body              string
		action, task, contextID string
	}{
		{"0.3 message/send", `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"m1","taskId":"t1","contextId":"c1"}}}`, "send:planner", "t1", "c1"},
		{"0.3 message/stream", `{"jsonrpc":"2.0","id":1,"method":"message/stream","params":{"message":{"role":"user","parts":[],"messageId":"m1"}}}`, "send:planner", "", ""},
		{"1.0 SendMessage", `{"jsonrpc":"2.0","id":"a","method":"SendMessage","params":{"message":{"role":"ROLE_USER","parts":[{"text":"hi"}],"messageId":"m1","contextId":"c9"}}}`, "send:planner", "", "c9"},
		{"1.0 SendStreamingMessage", `{"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage","params":{"message":{"messageId":"m1"}}}`, "send:planner", "", ""},
		{"0.3 tasks/get", `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t2","historyLength":3}}`, "task:planner/get", "t2", ""},
		{"1.0 GetTask", `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t2"}}`, "task:planner/get", "t2", ""},
		{"1.0 ListTasks", `{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{"contextId":"c1"}}`, "task:planner/list", "", ""},
		{"0.3 tasks/cancel", `{"jsonrpc":"2.0","id":1,"method":"tasks/cancel","params":{"id":"t3"}}`, "task:planner/cancel", "t3", ""},
		{"1.0 CancelTask", `{"jsonrpc":"2.0","id":1,"method":"CancelTask","params":{"id":"t3"}}`, "task:planner/cancel", "t3", ""},
		{"0.3 tasks/resubscribe", `{"jsonrpc":"2.0","id":1,"method":"tasks/resubscribe","params":{"id":"t4"}}`, "task:planner/subscribe", "t4", ""},
		{"1.0 SubscribeToTask", `{"jsonrpc":"2.0","id":1,"method":"SubscribeToTask","params":{"id":"t4"}}`, "task:planner/subscribe", "t4", ""},
		{"0.3 tasks/pushNotificationConfig/set", `{"jsonrpc":"2.0","id":1,"method":"tasks/pushNotificationConfig/set","params":{"taskId":"t5","pushNotificationConfig":{"url":"https://h/x"}}}`, "configure:planner/push", "t5", ""},
		{"0.3 tasks/pushNotificationConfig/get", `{"jsonrpc":"2.0","id":1,"method":"tasks/pushNotificationConfig/get","params":{"id":"t5"}}`, "configure:planner/push", "t5", ""},
		{"0.3 tasks/pushNotificationConfig/list", `{"jsonrpc":"2.0","id":1,"method":"tasks/pushNotificationConfig/list","params":{"id":"t5"}}`, "configure:planner/push", "t5", ""},
		{"0.3 tasks/pushNotificationConfig/delete", `{"jsonrpc":"2.0","id":1,"method":"tasks/pushNotificationConfig/delete","params":{"id":"t5","pushNotificationConfigId":"p"}}`, "configure:planner/push", "t5", ""},
		{"1.0 SetTaskPushNotificationConfig", `{"jsonrpc":"2.0","id":1,"method":"SetTaskPushNotificationConfig","params":{"taskId":"t6"}}`, "configure:planner/push", "t6", ""},
		{"1.0 GetTaskPushNotificationConfig", `{"jsonrpc":"2.0","id":1,"method":"GetTaskPushNotificationConfig","params":{"taskId":"t6"}}`, "configure:planner/push", "t6", ""},
		{"1.0 ListTaskPushNotificationConfig", `{"jsonrpc":"2.0","id":1,"method":"ListTaskPushNotificationConfig","params":{"taskId":"t6"}}`, "configure:planner/push", "t6", ""},
		{"1.0 DeleteTaskPushNotificationConfig", `{"jsonrpc":"2.0","id":1,"method":"DeleteTaskPushNotificationConfig","params":{"taskId":"t6"}}`, "configure:planner/push", "t6", ""},
		{"0.3 extended card", `{"jsonrpc":"2.0","id":1,"method":"agent/getAuthenticatedExtendedCard"}`, "connect:planner", "", ""},
		{"1.0 GetExtendedAgentCard", `{"jsonrpc":"2.0","id":1,"method":"GetExtendedAgentCard"}`, "connect:planner", "", ""},
		{"another method", `{"jsonrpc":"2.0","id":1,"method":"tasks/send"}`, "a2a:planner/tasks/send", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := agentproto.ParseA2A("planner", []byte(tc.body))
			if err != nil {
				t.Fatalf("ParseA2A: %v", err)
			}
			if got.Protocol != agentproto.A2A || got.Action != tc.action || got.TaskID != tc.task || got.ContextID != tc.contextID {
				t.Errorf("got protocol %q action %q task %q context %q, want a2a %q %q %q", got.Protocol, got.Action, got.TaskID, got.ContextID, tc.action, tc.task, tc.contextID)
			}
			if got.RawArguments != nil || got.HasArguments {
				t.Errorf("an A2A call carries MCP arguments: %s", got.RawArguments)
			}
		})
	}
}

func TestParseRefusals(t *testing.T) {
	deep := strings.Repeat(`{"a":`, agentproto.MaxDepth) + "1" + strings.Repeat("}", agentproto.MaxDepth)
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"x":"` + strings.Repeat("a", agentproto.MaxBody) + `"}}}`
	call := func(params string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":` + params + `}`
	}
	for _, tc := range []struct {
		name, body string
		h          edge.MapHeaders
		is         error  // besides ErrBadRequest (or instead, for a header mismatch)
		msg        string // in the error's text
	}{
		{"empty body", ``, nil, nil, "empty body"},
		{"not JSON", `<html>`, nil, nil, "unexpected character"},
		{"SSE where JSON is expected", "data: {\"jsonrpc\":\"2.0\"}\n\n", nil, nil, "unexpected character"},
		{"truncated", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"`, nil, nil, "truncated"},
		{"truncated in a string", `{"jsonrpc":"2.0","id":1,"method":"tools/ca`, nil, nil, "truncated"},
		{"a batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, nil, agentproto.ErrBatch, "batch"},
		{"trailing data", `{"jsonrpc":"2.0","id":1,"method":"ping"} {"jsonrpc":"2.0","id":2,"method":"tools/call"}`, nil, nil, "data after the JSON value"},
		{"a BOM", "\ufeff" + `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil, nil, "unexpected character"},
		{"too large", big, nil, agentproto.ErrTooLarge, "over the bound"},
		{"too deep", call(`{"name":"t","arguments":` + deep + `}`), nil, nil, "nested deeper than 64"},
		{"no jsonrpc", `{"id":1,"method":"ping"}`, nil, nil, `"jsonrpc" must be "2.0"`},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, nil, nil, `"jsonrpc" must be "2.0"`},
		{"a response", `{"jsonrpc":"2.0","id":1,"result":{}}`, nil, nil, "a JSON-RPC response"},
		{"an unknown member", `{"jsonrpc":"2.0","id":1,"method":"ping","extra":1}`, nil, nil, `unknown JSON-RPC member "extra"`},
		{"method not a string", `{"jsonrpc":"2.0","id":1,"method":7}`, nil, nil, `"method" missing or not a string`},
		{"empty method", `{"jsonrpc":"2.0","id":1,"method":""}`, nil, nil, "the method is empty"},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, nil, nil, `"id" must be a string or a number`},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, nil, nil, `"id" must be a string or a number`},
		{"params an array", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["send_email"]}`, nil, nil, `"params" must be an object`},
		{"tools/call without a name", call(`{"arguments":{}}`), nil, nil, "tools/call needs params.name"},
		{"a name that is not a string", call(`{"name":["send_email"]}`), nil, nil, "params.name must be a string"},
		{"an empty tool name", call(`{"name":""}`), nil, nil, "the tool name (params.name) is empty"},
		{"a control character in a name", call(`{"name":"send\u001bemail"}`), nil, edge.ErrTextControl, "contains a control character"},
		{"a space in a name", call(`{"name":"send email"}`), nil, nil, "contains a space"},
		{"a NUL in a URI", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a\u0000b"}}`, nil, edge.ErrTextControl, "resource URI"},
		{"arguments not an object", call(`{"name":"t","arguments":"to=x"}`), nil, nil, "params.arguments must be an object"},
		{"the duplicate-key attack", call(`{"name":"search_papers","name":"delete_paper"}`), nil, agentproto.ErrDuplicateKey, `key "name" appears twice`},
		{"a duplicate key spelt with an escape", call(`{"name":"search_papers","n\u0061me":"delete_paper"}`), nil, agentproto.ErrDuplicateKey, `appears twice`},
		{"a case-fold duplicate key", call(`{"name":"search_papers","Name":"delete_paper"}`), nil, agentproto.ErrDuplicateKey, "only in case"},
		{"a Kelvin-sign fold duplicate", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"k":1,"\u212a":2}}}`, nil, agentproto.ErrDuplicateKey, "only in case"},
		{"a duplicate top-level method", `{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}`, nil, agentproto.ErrDuplicateKey, `key "method" appears twice`},
		{"a duplicate deep in the arguments", call(`{"name":"send_email","arguments":{"to":"a@ours.example","options":{"cc":"x","cc":"y"}}}`), nil, agentproto.ErrDuplicateKey, `key "cc"`},
		{"invalid UTF-8", call("{\"name\":\"t\xff\"}"), nil, nil, "not valid UTF-8"},
		{"a lone surrogate", call(`{"name":"t\ud800"}`), nil, nil, "lone UTF-16 surrogate"},
		{"a raw newline in a string", call("{\"name\":\"a\nb\"}"), nil, nil, "raw control character"},
		{"a raw control character in a long string (word-at-a-time scan)", call("{\"name\":\"t\",\"arguments\":{\"body\":\"0123456789abcdef\x01ghijklmnop\"}}"), nil, nil, "raw control character"},
		{"invalid UTF-8 in a long string (word-at-a-time scan)", call("{\"name\":\"t\",\"arguments\":{\"body\":\"0123456789abcdef\xc3\x28ghijklmnop\"}}"), nil, nil, "not valid UTF-8"},
		{"a bad escape", call(`{"name":"a\qb"}`), nil, nil, `invalid escape \q`},
		{"a bad number", `{"jsonrpc":"2.0","id":01,"method":"ping"}`, nil, nil, "expected ',' or '}'"},
		{"Mcp-Method disagrees", call(`{"name":"search_papers"}`), edge.MapHeaders{"Mcp-Method": "tools/list"}, agentproto.ErrHeaderMismatch, `Mcp-Method is "tools/list", the body's method is "tools/call"`},
		{"Mcp-Name disagrees", call(`{"name":"delete_paper"}`), edge.MapHeaders{"Mcp-Method": "tools/call", "Mcp-Name": "search_papers"}, agentproto.ErrHeaderMismatch, `Mcp-Name is "search_papers", the body names "delete_paper"`},
		{"Mcp-Name on a method that names nothing", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, edge.MapHeaders{"Mcp-Name": "x"}, agentproto.ErrHeaderMismatch, "names nothing"},
		{"Mcp-Name repeated", call(`{"name":"t"}`), edge.MapHeaders{"Mcp-Name": "t", "mcp_name": "t"}, agentproto.ErrHeaderMismatch, "sent 2 times"},
		{"Mcp-Name bad base64", call(`{"name":"t"}`), edge.MapHeaders{"Mcp-Name": "=?base64?***?="}, agentproto.ErrHeaderMismatch, "invalid base64"},
		{"Mcp-Session-Id with a space", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, edge.MapHeaders{"Mcp-Session-Id": "a b"}, nil, "outside visible ASCII"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h agentproto.Headers
			if tc.h != nil {
				h = tc.h
			}
			got, err := agentproto.ParseMCP("mail", []byte(tc.body), h)
			if err == nil {
				t.Fatalf("ParseMCP accepted it: %+v", got)
			}
			if got.Action != "" {
				t.Errorf("a refusal carries an action: %q", got.Action)
			}
			if errors.Is(tc.is, agentproto.ErrHeaderMismatch) {
				if !errors.Is(err, agentproto.ErrHeaderMismatch) || agentproto.Reason(err) != "mcp_header_mismatch" {
					t.Errorf("error %v (reason %s), want ErrHeaderMismatch / mcp_header_mismatch", err, agentproto.Reason(err))
				}
			} else if !errors.Is(err, agentproto.ErrBadRequest) || agentproto.Reason(err) != "bad_request" {
				t.Errorf("error %v is not ErrBadRequest", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want one that is %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestParseA2ARefusals(t *testing.T) {
	for _, tc := range []struct{ name, body, msg string }{
		{"a batch", `[{"jsonrpc":"2.0","id":1,"method":"message/send"}]`, "batch"},
		{"message not an object", `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":"hi"}}`, "params.message must be an object"},
		{"taskId not a string", `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"taskId":5}}}`, "params.message.taskId must be a string"},
		{"task id with a control character", `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t\u0007"}}`, "control character"},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"tasks/get","method":"message/send"}`, "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := agentproto.ParseA2A("planner", []byte(tc.body))
			if err == nil || got.Action != "" {
				t.Fatalf("ParseA2A = %+v, %v; want a refusal", got, err)
			}
			if !errors.Is(err, agentproto.ErrBadRequest) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want ErrBadRequest saying %q", err, tc.msg)
			}
		})
	}
}

func TestHeaderOnly(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      edge.MapHeaders
		action string
		msg    string // a refusal
	}{
		{"tools/call by name", v26(edge.MapHeaders{"Mcp-Method": "tools/call", "Mcp-Name": "search_papers"}), "call:papers/search_papers", ""},
		{"resources/read, base64", v26(edge.MapHeaders{"Mcp-Method": "resources/read", "Mcp-Name": "=?base64?cGFwZXI6Ly8x?="}), "read:papers/paper://1", ""},
		{"tools/list", v26(edge.MapHeaders{"Mcp-Method": "tools/list"}), "list:papers/tools", ""},
		{"initialize", v26(edge.MapHeaders{"Mcp-Method": "initialize"}), "connect:papers", ""},
		{"a later revision", edge.MapHeaders{"Mcp-Method": "tools/list", "Mcp-Protocol-Version": "2027-01-15"}, "list:papers/tools", ""},
		{"no headers", edge.MapHeaders{}, "", "no Mcp-Method header"},
		{"tools/call without Mcp-Name", v26(edge.MapHeaders{"Mcp-Method": "tools/call"}), "", "needs exactly one Mcp-Name"},
		{"a control character", v26(edge.MapHeaders{"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?YQpi?="}), "", "control character"},
		{"Mcp-Name with tools/list", v26(edge.MapHeaders{"Mcp-Method": "tools/list", "Mcp-Name": "x"}), "", "names nothing"},
		// An older server does not check the headers against the body.
		{"no protocol version", edge.MapHeaders{"Mcp-Method": "tools/list"}, "", "needs one MCP-Protocol-Version header of 2026-07-28 or later"},
		{"an older revision", edge.MapHeaders{"Mcp-Method": "tools/list", "Mcp-Protocol-Version": "2025-11-25"}, "", "2026-07-28 or later"},
		{"a revision that is no date", edge.MapHeaders{"Mcp-Method": "tools/list", "Mcp-Protocol-Version": "2026-07-2x"}, "", "2026-07-28 or later"},
		{"a revision with a suffix", edge.MapHeaders{"Mcp-Method": "tools/list", "Mcp-Protocol-Version": "9999-99-99x"}, "", "2026-07-28 or later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := agentproto.HeaderOnly("papers", tc.h)
			if tc.msg != "" {
				if err == nil || got.Action != "" || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("HeaderOnly = %+v, %v; want a refusal saying %q", got, err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Action != tc.action || !got.HeaderOnly || got.RawArguments != nil {
				t.Errorf("HeaderOnly = %+v, want action %q, HeaderOnly, no arguments", got, tc.action)
			}
		})
	}
}

// v26 adds the revision that makes a header-only decision safe.
func v26(h edge.MapHeaders) edge.MapHeaders {
	h["Mcp-Protocol-Version"] = agentproto.HeaderRevision
	return h
}

// TestArgument: one argument at a dot path, decoded alone.
func TestArgument(t *testing.T) {
	c, err := agentproto.ParseMCP("mail", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_email","arguments":{"to":["a@x","b@y"],"n":12345678901234567890,"options":{"cc":"c@z","deep":{"k":true}},"s":"x"}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want any
		ok   bool
	}{
		{"to", []any{"a@x", "b@y"}, true},
		{"n", json.Number("12345678901234567890"), true},
		{"options.cc", "c@z", true},
		{"options.deep.k", true, true},
		{"options", map[string]any{"cc": "c@z", "deep": map[string]any{"k": true}}, true},
		{"missing", nil, false},
		{"options.missing", nil, false},
		{"s.x", nil, false},  // through a string
		{"to.0", nil, false}, // lists are not indexed
	} {
		got, ok, err := c.Argument(tc.path)
		if err != nil || ok != tc.ok || !cmp.Equal(got, tc.want) {
			t.Errorf("Argument(%q) = %v, %v, %v; want %v, %v", tc.path, got, ok, err, tc.want, tc.ok)
		}
	}
	none, _ := agentproto.ParseMCP("mail", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`), nil)
	if v, ok, err := none.Argument("to"); ok || v != nil || err != nil {
		t.Errorf("no arguments: %v %v %v", v, ok, err)
	}
}
