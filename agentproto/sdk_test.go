package agentproto_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/meshguard/meshguard/agentproto"
)

// TestParseMCPSDKBodies: requests encoded by the official MCP Go SDK's own
// types and JSON-RPC encoder parse to the calls they are.
func TestParseMCPSDKBodies(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		params       any
		action       string
		args         map[string]any
	}{
		{"tools/call", "tools/call", &mcp.CallToolParams{Name: "send_email", Arguments: map[string]any{"to": "a@example.com", "options": map[string]any{"cc": "b@example.com"}}},
			"call:mail/send_email", map[string]any{"to": "a@example.com", "options": map[string]any{"cc": "b@example.com"}}},
		{"tools/list", "tools/list", &mcp.ListToolsParams{Cursor: "c"}, "list:mail/tools", nil},
		{"resources/read", "resources/read", &mcp.ReadResourceParams{URI: "mail://inbox/1"}, "read:mail/mail://inbox/1", nil},
		{"prompts/get", "prompts/get", &mcp.GetPromptParams{Name: "summarise", Arguments: map[string]string{"style": "short"}}, "get:mail/prompts/summarise", map[string]any{"style": "short"}},
		{"initialize", "initialize", &mcp.InitializeParams{ProtocolVersion: "2025-11-25", ClientInfo: &mcp.Implementation{Name: "agent", Version: "1"}}, "connect:mail", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params, err := json.Marshal(tc.params)
			if err != nil {
				t.Fatal(err)
			}
			id, err := jsonrpc.MakeID(float64(7))
			if err != nil {
				t.Fatal(err)
			}
			body, err := jsonrpc.EncodeMessage(&jsonrpc.Request{ID: id, Method: tc.method, Params: params})
			if err != nil {
				t.Fatal(err)
			}
			c, err := agentproto.ParseMCP("mail", body, nil)
			if err != nil {
				t.Fatalf("ParseMCP(%s): %v", body, err)
			}
			if c.Action != tc.action || c.ID != "7" || c.Method != tc.method {
				t.Errorf("ParseMCP(%s) = action %q id %q method %q, want %q 7 %q", body, c.Action, c.ID, c.Method, tc.action, tc.method)
			}
			if tc.args != nil {
				args, err := c.Arguments()
				if err != nil {
					t.Fatal(err)
				}
				got, _ := json.Marshal(args)
				want, _ := json.Marshal(tc.args)
				if string(got) != string(want) {
					t.Errorf("arguments %s, want %s", got, want)
				}
			}
		})
	}
}

// TestParseA2AClientBodies: what a2a-go's JSON-RPC client really POSTs
// (to a loopback receiver) parses to the call it is.
func TestParseA2AClientBodies(t *testing.T) {
	bodies := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the body: %v", err)
		}
		bodies <- b
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"test receiver"}}`)
	}))
	t.Cleanup(srv.Close)
	tr := a2aclient.NewJSONRPCTransport(srv.URL, srv.Client())
	ctx := context.Background()
	for _, tc := range []struct {
		name            string
		call            func() error
		action, method  string
		task, contextID string
	}{
		{"message/send", func() error {
			m := a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: "summarise this"})
			m.TaskID, m.ContextID = "task-1", "ctx-1"
			_, err := tr.SendMessage(ctx, &a2a.MessageSendParams{Message: m})
			return err
		}, "send:planner", "message/send", "task-1", "ctx-1"},
		{"tasks/get", func() error {
			_, err := tr.GetTask(ctx, &a2a.TaskQueryParams{ID: "task-2"})
			return err
		}, "task:planner/get", "tasks/get", "task-2", ""},
		{"tasks/cancel", func() error {
			_, err := tr.CancelTask(ctx, &a2a.TaskIDParams{ID: "task-3"})
			return err
		}, "task:planner/cancel", "tasks/cancel", "task-3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = tc.call() // the receiver answers with an error: only the request matters
			body := <-bodies
			c, err := agentproto.ParseA2A("planner", body)
			if err != nil {
				t.Fatalf("ParseA2A(%s): %v", body, err)
			}
			if c.Action != tc.action || c.Method != tc.method || c.TaskID != tc.task || c.ContextID != tc.contextID || c.ID == "" {
				t.Errorf("ParseA2A(%s) = %+v, want action %q method %q task %q context %q and an id", body, c, tc.action, tc.method, tc.task, tc.contextID)
			}
		})
	}
}

// TestParseA2AReadsIDsAsA2AGo: the task and context ids a call records
// are the ones a2a-go's server acts on, or the request is refused. a2a-go
// decodes params with encoding/json, which matches "ID" or "TaskId" to
// its id and taskId fields and ignores members it does not know: a
// record of task t-decoy for a cancel of t-victim would be a false trail.
func TestParseA2AReadsIDsAsA2AGo(t *testing.T) {
	msg := func(extra string) string {
		return `{"message":{"role":"user","messageId":"m1","parts":[{"kind":"text","text":"hi"}]` + extra + `}}`
	}
	for _, tc := range []struct {
		name, method, params string
		refused              bool
	}{
		{"a cancel as sent", "tasks/cancel", `{"id":"t-1"}`, false},
		{"a cancel by taskId", "tasks/cancel", `{"taskId":"t-1"}`, false},
		{"a message as sent", "message/send", msg(`,"taskId":"t-1","contextId":"c-1"`), false},
		{"taskId beside ID", "tasks/cancel", `{"taskId":"t-decoy","ID":"t-victim"}`, true},
		{"Id alone", "tasks/get", `{"Id":"t-victim"}`, true},
		{"a Kelvin sign in taskId", "tasks/cancel", `{"tas\u212aId":"t-victim"}`, true},
		{"TaskId in the message", "message/send", msg(`,"TaskId":"t-victim"`), true},
		{"contextID in the message", "message/send", msg(`,"contextID":"c-victim"`), true},
		{"the message as Message", "message/send", `{"Message":{"role":"user","messageId":"m1","parts":[],"taskId":"t-victim"}}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"jsonrpc":"2.0","id":1,"method":"` + tc.method + `","params":` + tc.params + `}`
			got, err := agentproto.ParseA2A("planner", []byte(body))
			if tc.refused {
				if !errors.Is(err, agentproto.ErrBadRequest) {
					t.Fatalf("ParseA2A = %+v, %v; want a refusal", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var task, context string
			if tc.method == "message/send" {
				var p a2a.MessageSendParams
				if err := json.Unmarshal([]byte(tc.params), &p); err != nil {
					t.Fatal(err)
				}
				task, context = string(p.Message.TaskID), p.Message.ContextID
			} else {
				var p a2a.TaskIDParams
				if err := json.Unmarshal([]byte(tc.params), &p); err != nil {
					t.Fatal(err)
				}
				task = string(p.ID)
				if task == "" { // a2a-go's 0.3 types name it id; taskId is 1.0's
					task = got.TaskID
				}
			}
			if got.TaskID != task || got.ContextID != context {
				t.Errorf("recorded task %q context %q; a2a-go reads task %q context %q", got.TaskID, got.ContextID, task, context)
			}
		})
	}
}
