package agentproto_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
)

// TestKeySpeltInAnotherCase: Go's encoding/json — what many MCP and A2A
// servers bind requests with — matches a struct field by case-fold, so
// "ARGUMENTS", "Arguments" and "argument\u017f" (the long s folds to s)
// are the call's arguments to such a server, and "To" its to argument.
// MeshGuard read none of them, so a deny rule on an argument did not match
// while the tool ran with it. Each such spelling is refused; the exact one,
// and a key that merely resembles another, are not.
func TestKeySpeltInAnotherCase(t *testing.T) {
	call := func(params string) []byte {
		return []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":` + params + `}`)
	}
	// What a server binding with encoding/json reads of each body.
	type serverArgs struct {
		To      string `json:"to"`
		Options struct {
			CC string `json:"cc"`
		} `json:"options"`
	}
	type serverParams struct {
		Name      string     `json:"name"`
		Arguments serverArgs `json:"arguments"`
	}
	for _, tc := range []struct {
		name, params, path string
		serverTo           string // what encoding/json binds to the argument the rule reads
	}{
		{"params.arguments in upper case", `{"name":"send_email","ARGUMENTS":{"to":"x@rival.example"}}`, "to", "x@rival.example"},
		{"params.arguments capitalised", `{"name":"send_email","Arguments":{"to":"x@rival.example"}}`, "to", "x@rival.example"},
		{"params.arguments with a long s", `{"name":"send_email","argument\u017f":{"to":"x@rival.example"}}`, "to", "x@rival.example"},
		// Unescaped, the long s makes the key a byte longer than the name
		// it folds to: a length check alone must not pass it.
		{"params.arguments with a raw long s", "{\"name\":\"send_email\",\"argument\u017f\":{\"to\":\"x@rival.example\"}}", "to", "x@rival.example"},
		{"an argument capitalised", `{"name":"send_email","arguments":{"To":"x@rival.example"}}`, "to", "x@rival.example"},
		{"a nested argument", `{"name":"send_email","arguments":{"options":{"CC":"x@rival.example"}}}`, "options.cc", "x@rival.example"},
		{"an object on the path", `{"name":"send_email","arguments":{"Options":{"cc":"x@rival.example"}}}`, "options.cc", "x@rival.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := call(tc.params)
			var req struct {
				Params serverParams `json:"params"`
			}
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatal(err)
			}
			if got := req.Params.Arguments.To + req.Params.Arguments.Options.CC; got != tc.serverTo {
				t.Fatalf("encoding/json binds %q, want %q: the case is no differential", got, tc.serverTo)
			}
			c, err := agentproto.ParseMCP("mail", body, nil)
			if err == nil {
				var v any
				var ok bool
				v, ok, err = c.Argument(tc.path)
				if err == nil {
					t.Fatalf("arguments.%s read as %v (present %v) while the server reads %q: want it refused", tc.path, v, ok, tc.serverTo)
				}
			}
			if !errors.Is(err, agentproto.ErrKeyCase) || !errors.Is(err, agentproto.ErrBadRequest) {
				t.Fatalf("got %v, want ErrKeyCase and ErrBadRequest", err)
			}
		})
	}
	for _, tc := range []struct{ name, body string }{
		{"A2A message.taskId in another case", `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"TaskId":"t1","role":"user","parts":[]}}}`},
		{"A2A params.message capitalised", `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"Message":{"taskId":"t1","role":"user","parts":[]}}}`},
		{"A2A params.id in upper case", `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"ID":"t1"}}`},
		{"A2A message.taskId with a raw Kelvin sign", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{\"tas\u212aId\":\"t1\",\"role\":\"user\",\"parts\":[]}}}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := agentproto.ParseA2A("planner", []byte(tc.body)); !errors.Is(err, agentproto.ErrKeyCase) {
				t.Fatalf("got %v, want ErrKeyCase", err)
			}
		})
	}
	// Not refused: the exact spellings, keys that only resemble them, and
	// an argument no rule reads.
	c, err := agentproto.ParseMCP("mail", call(`{"name":"send_email","arguments":{"to":"a@ours.example","Subject":"hi","tos":"x"},"_meta":{"Name":"x"}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.Argument("to"); err != nil || !ok || v != "a@ours.example" {
		t.Errorf("Argument(to) = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := c.Argument("cc"); err != nil || ok {
		t.Errorf("Argument(cc) = %v, %v, %v; want absent", v, ok, err)
	}
}
