package engine_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestProtocolCallsAreRecorded: the audit record of a decision taken on an
// agent-protocol call carries the call (docs/audit.md "call"), its
// arguments only as their digest — the same as agentproto's — and a
// request whose body was refused is recorded without one.
func TestProtocolCallsAreRecorded(t *testing.T) {
	f := enginetest.New(t, mailPolicy, enginetest.Options{Routes: []engine.Route{
		{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"},
		{Host: "planner.mesh", Path: "*", Protocol: agentproto.A2A, Service: "planner"},
	}})
	_, tok := f.Agent(t, "researcher", 1, nil)
	args := `{"to":"ann@ours.example","body":"the secret plan","options":{"cc":"bob@ours.example"}}`
	parsed, err := agentproto.ParseMCP("mail", callBody("send_email", args), nil)
	if err != nil {
		t.Fatal(err)
	}
	digest, noArgs := marshalDigest(t, parsed), marshalDigest(t, agentproto.Call{})
	tests := []struct {
		name string
		r    engine.Request
		want *audit.Call // nil: no call recorded
	}{
		{"a tool call: its digest, not its arguments",
			engine.Request{Method: "POST", Path: "/mcp", Body: callBody("send_email", args), Headers: edge.MapHeaders{"mcp-session-id": "sess-9"}},
			&audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "1", SessionID: "sess-9", ArgumentsDigest: digest}},
		{"a denied tool call is recorded as well",
			engine.Request{Method: "POST", Path: "/mcp", Body: callBody("delete_inbox", `{}`)},
			&audit.Call{Protocol: "mcp", Method: "tools/call", Name: "delete_inbox", JSONRPCID: "1", ArgumentsDigest: noArgs}},
		{"a tool call without arguments digests as {}",
			engine.Request{Method: "POST", Path: "/mcp", Body: mcpBody("tools/call", `{"name":"list_inbox"}`)},
			&audit.Call{Protocol: "mcp", Method: "tools/call", Name: "list_inbox", JSONRPCID: "1", ArgumentsDigest: noArgs}},
		{"a string id keeps its type",
			engine.Request{Method: "POST", Path: "/mcp", Body: []byte(`{"jsonrpc":"2.0","id":"1","method":"tools/list"}`)},
			&audit.Call{Protocol: "mcp", Method: "tools/list", JSONRPCID: `"1"`}},
		{"a notification",
			engine.Request{Method: "POST", Path: "/mcp", Body: []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)},
			&audit.Call{Protocol: "mcp", Method: "notifications/initialized", Notification: true}},
		{"header-only: no digest, the arguments were not seen",
			engine.Request{Method: "POST", Path: "/mcp", Headers: edge.MapHeaders{"mcp-protocol-version": agentproto.HeaderRevision, "mcp-method": "tools/call", "mcp-name": "list_inbox"}},
			&audit.Call{Protocol: "mcp", Method: "tools/call", Name: "list_inbox", HeaderOnly: true}},
		{"an A2A message: task and context ids",
			engine.Request{Method: "POST", Host: "planner.mesh", Path: "/", Body: mcpBody("message/send", `{"message":{"role":"user","parts":[],"messageId":"m1","taskId":"t-1","contextId":"c-1"}}`)},
			&audit.Call{Protocol: "a2a", Method: "message/send", JSONRPCID: "1", TaskID: "t-1", ContextID: "c-1"}},
		{"a refused body: recorded, without a call",
			engine.Request{Method: "POST", Path: "/mcp", Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`)},
			nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Token, tc.r.Source = tok, engine.SourceGateway
			d := check(t, f.Engine, tc.r)
			var last audit.Record
			if err := f.Store.ScanAudit(context.Background(), func(r audit.Record) error { last = r; return nil }); err != nil {
				t.Fatal(err)
			}
			if last.DecisionID != d.ID {
				t.Fatalf("decision %s (%d %s) was not recorded", d.ID, d.Status, d.Reason)
			}
			switch {
			case tc.want == nil && last.Call != nil:
				t.Fatalf("a refused body's record carries a call: %+v", last.Call)
			case tc.want == nil:
				if d.Status != 400 || last.Status != 400 {
					t.Fatalf("status %d, recorded %d: want the refusal", d.Status, last.Status)
				}
			case last.Call == nil:
				t.Fatalf("no call recorded, want %+v", tc.want)
			case !reflect.DeepEqual(*last.Call, *tc.want):
				t.Fatalf("recorded call\n%+v\nwant\n%+v", *last.Call, *tc.want)
			}
		})
	}
	// The store's chain, calls included, verifies.
	v := audit.NewVerifier(audit.GenesisHash)
	if err := f.Store.ScanAudit(context.Background(), func(r audit.Record) error { return v.Next(&r) }); err != nil {
		t.Fatalf("the chain with calls does not verify: %v", err)
	}
}

// marshalDigest is the arguments digest as docs/mcp.md defines it,
// computed independently of the audit writer: the SHA-256 of encoding/json's
// Marshal of the decoded arguments ({} for none).
func marshalDigest(t *testing.T, c agentproto.Call) string {
	t.Helper()
	args, err := c.Arguments()
	if err != nil {
		t.Fatal(err)
	}
	if args == nil {
		args = map[string]any{}
	}
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
