package filterapi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestCheckFilterRecordErrors: every record the engine could not have
// written is refused with an errBadRecord whose text is the field and the
// reason the filter's operators read in the 400; a text field's refusal
// also unwraps to the engine's own reason; a good record passes.
func TestCheckFilterRecordErrors(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	good := audit.Record{Timestamp: now, DecisionID: "dec_x", AgentID: "agt_x", Action: "read:docs",
		Method: "GET", Path: "/docs", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "rule_allow", Source: "wasm", Mode: "enforce"}
	if err := checkFilterRecord(&good, now); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(r *audit.Record)
		want  string
		cause error // the engine's reason it unwraps to, if any
	}{
		{"from last week", func(r *audit.Record) { r.Timestamp = now.Add(-7 * 24 * time.Hour) }, "timestamp: 2025-12-25T12:00:00Z is not within the last day", nil},
		{"from the future", func(r *audit.Record) { r.Timestamp = now.Add(time.Hour) }, "timestamp: 2026-01-01T13:00:00Z is not within the last day", nil},
		{"another source", func(r *audit.Record) { r.Source = "api" }, `source: "api": expected wasm`, nil},
		{"no decision", func(r *audit.Record) { r.Decision = "maybe" }, "decision: expected allow or deny", nil},
		{"no mode", func(r *audit.Record) { r.Mode = "" }, "mode: expected enforce or audit", nil},
		{"no status", func(r *audit.Record) { r.Status = 0 }, "status: 0: expected an HTTP status", nil},
		{"a long chain", func(r *audit.Record) { r.Chain = make([]string, 65) }, "chain or context: too long", nil},
		{"a negative latency", func(r *audit.Record) { r.LatencyUs = -1 }, "latencyUs and delegationDepth: must not be negative", nil},
		{"a long action", func(r *audit.Record) { r.Action = strings.Repeat("a", maxRecordedAction+1) }, "action: longer than 8200 bytes", edge.ErrTextTooLong},
		{"a host not UTF-8", func(r *audit.Record) { r.Host = "\xff.mesh" }, "host: not valid UTF-8", edge.ErrTextNotUTF8},
		{"a NUL in the path", func(r *audit.Record) { r.Path = "/a\x00" }, "path: contains a control character", nil},
		{"a chain entry with ESC", func(r *audit.Record) { r.Chain = []string{"agt_\x1b[2J"} }, "chain: contains a control character", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.edit(&r)
			err := checkFilterRecord(&r, now)
			if !errors.Is(err, errBadRecord) || err.Error() != tt.want {
				t.Fatalf("got %v; want an errBadRecord reading %q", err, tt.want)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Fatalf("%v does not unwrap to %v", err, tt.cause)
			}
		})
	}
}

// TestCheckFilterCall: a shipped record's call is held to what the engine
// records of one (agentproto's bounds and text rule); the arguments
// themselves are never taken from a filter.
func TestCheckFilterCall(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	good := audit.Record{Timestamp: now, DecisionID: "dec_x", AgentID: "agt_x", Action: "call:mail/send_email",
		Method: "POST", Path: "/mcp", Host: "mail.mesh", Decision: "deny", Status: 403, Reason: "rule_deny", Source: "wasm", Mode: "enforce"}
	goodCall := audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: `"r-1"`, SessionID: "s",
		ArgumentsDigest: strings.Repeat("ab", 32)}
	for _, g := range []struct {
		action string
		call   audit.Call
	}{
		{"call:mail/send_email", goodCall},
		{"send:planner", audit.Call{Protocol: "a2a", Method: "message/send", JSONRPCID: "-12.5e3", TaskID: "t", ContextID: "c"}},
		{"connect:planner", audit.Call{Protocol: "a2a", Method: "GET"}},
		{"connect:mail", audit.Call{Protocol: "mcp", Method: "notifications/initialized", Notification: true}},
		{"connect:mail", audit.Call{Protocol: "mcp", Method: "DELETE", SessionID: "s"}},
		{"call:mail/send_email", audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "1", HeaderOnly: true}},
		{"list:mail/tools", audit.Call{Protocol: "mcp", Method: "tools/list", JSONRPCID: "1"}},
	} {
		r := good
		r.Action, r.Call = g.action, &g.call
		if g.call.Method == "GET" || g.call.Method == "DELETE" {
			r.Method = g.call.Method
		}
		if err := checkFilterRecord(&r, now); err != nil {
			t.Fatalf("a good call %+v: %v", g.call, err)
		}
	}
	tests := []struct {
		name string
		edit func(c *audit.Call)
		want string
	}{
		{"another protocol", func(c *audit.Call) { c.Protocol = "grpc" }, `call.protocol: "grpc": expected mcp or a2a`},
		{"no method", func(c *audit.Call) { c.Method = "" }, "call.method: empty, or holds a space"},
		{"a method with a space", func(c *audit.Call) { c.Method = "tools/call x" }, "call.method: empty, or holds a space"},
		{"a long name", func(c *audit.Call) { c.Name = strings.Repeat("n", agentproto.MaxName+1) }, "call.name: longer than 4096 bytes"},
		{"a session id with ESC", func(c *audit.Call) { c.SessionID = "s\x1b[2J" }, "call.sessionId: contains a control character"},
		{"a task id not UTF-8", func(c *audit.Call) { c.TaskID = "\xff" }, "call.taskId: not valid UTF-8"},
		{"a context id with NUL", func(c *audit.Call) { c.ContextID = "\x00" }, "call.contextId: contains a control character"},
		{"an id that is an object", func(c *audit.Call) { c.JSONRPCID = `{"a":1}` }, "call.jsonrpcId: expected a JSON number or string"},
		{"an id that is not JSON", func(c *audit.Call) { c.JSONRPCID = `"open` }, "call.jsonrpcId: expected a JSON number or string"},
		{"an id whose string holds a NUL", func(c *audit.Call) { c.JSONRPCID = `"\u0000"` }, "call.jsonrpcId: expected a JSON number or string"},
		{"a long numeric id", func(c *audit.Call) { c.JSONRPCID = strings.Repeat("9", 65) }, "call.jsonrpcId: expected a JSON number or string"},
		{"a notification with an id", func(c *audit.Call) { c.Notification = true }, "call.notification: a notification is exactly a call without an id"},
		{"a call without id, not a notification", func(c *audit.Call) { c.JSONRPCID = "" }, "call.notification: a notification is exactly a call without an id"},
		{"a digest in upper case", func(c *audit.Call) { c.ArgumentsDigest = strings.Repeat("AB", 32) }, "call.argumentsDigest: expected 64 lower-case hex digits"},
		{"a short digest", func(c *audit.Call) { c.ArgumentsDigest = "abc" }, "call.argumentsDigest: expected 64 lower-case hex digits"},
		{"a header-only call with a digest", func(c *audit.Call) { c.HeaderOnly = true }, "call.argumentsDigest: a header-only call's arguments were not seen"},
		{"arguments shipped", func(c *audit.Call) { c.Arguments = []byte(`{"to":"x"}`) }, "call.arguments: a filter ships the arguments' digest, never the arguments"},
		{"arguments said omitted", func(c *audit.Call) { c.ArgumentsOmitted = true }, "call.arguments: a filter ships the arguments' digest, never the arguments"},
		// The call must be the one the record's action names: a filter
		// must not record an allowed tool's call as another tool's.
		{"another tool than the action's", func(c *audit.Call) { c.Name = "delete_inbox" }, `call.method: mcp tools/call "delete_inbox" is not the call of action "call:mail/send_email"`},
		{"another method than the action's", func(c *audit.Call) { c.Method = "prompts/get" }, `call.method: mcp prompts/get "send_email" is not the call of action "call:mail/send_email"`},
		{"another protocol than the action's", func(c *audit.Call) { c.Protocol = "a2a" }, `call.method: a2a tools/call "send_email" is not the call of action "call:mail/send_email"`},
		{"a tools/call without a name", func(c *audit.Call) { c.Name = "" }, `call.method: mcp tools/call "" is not the call of action "call:mail/send_email"`},
		{"a tools/call without its digest", func(c *audit.Call) { c.ArgumentsDigest = "" }, "call.argumentsDigest: expected exactly for a tools/call or prompts/get decided on its body"},
	}
	for _, tt := range []struct {
		name, action string
		call         audit.Call
		want         string
	}{
		{"a GET with a JSON-RPC id", "connect:mail", audit.Call{Protocol: "mcp", Method: "GET", JSONRPCID: "1"},
			"call.notification: a call that is no JSON-RPC request has no id and is no notification"},
		{"a JSON-RPC method on a GET", "connect:mail", audit.Call{Protocol: "mcp", Method: "initialize"},
			`call.method: mcp initialize "" is not the call of action "connect:mail"`},
		{"an A2A DELETE", "connect:planner", audit.Call{Protocol: "a2a", Method: "DELETE"},
			`call.method: a2a DELETE "" is not the call of action "connect:planner"`},
		{"a list naming a tool", "list:mail/tools", audit.Call{Protocol: "mcp", Method: "tools/list", Name: "delete_inbox", JSONRPCID: "1"},
			`call.method: mcp tools/list "delete_inbox" is not the call of action "list:mail/tools"`},
		{"a list with a digest", "list:mail/tools", audit.Call{Protocol: "mcp", Method: "tools/list", JSONRPCID: "1", ArgumentsDigest: strings.Repeat("ab", 32)},
			"call.argumentsDigest: expected exactly for a tools/call or prompts/get decided on its body"},
		{"an A2A task call as a message", "send:planner", audit.Call{Protocol: "a2a", Method: "tasks/cancel", JSONRPCID: "1"},
			`call.method: a2a tasks/cancel "" is not the call of action "send:planner"`},
		{"a call on a plain action", "read:docs", audit.Call{Protocol: "mcp", Method: "tools/call", Name: "read", JSONRPCID: "1", ArgumentsDigest: strings.Repeat("ab", 32)},
			`call.method: mcp tools/call "read" is not the call of action "read:docs"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			r.Action, r.Call = tt.action, &tt.call
			if tt.call.JSONRPCID == "" || tt.call.Method == "GET" {
				r.Method = "GET"
			}
			if tt.call.Method == "DELETE" {
				r.Method = "DELETE"
			}
			if err := checkFilterRecord(&r, now); !errors.Is(err, errBadRecord) || err.Error() != tt.want {
				t.Fatalf("got %v; want an errBadRecord reading %q", err, tt.want)
			}
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, c := good, goodCall
			tt.edit(&c)
			r.Call = &c
			err := checkFilterRecord(&r, now)
			if !errors.Is(err, errBadRecord) || err == nil || err.Error() != tt.want {
				t.Fatalf("got %v; want an errBadRecord reading %q", err, tt.want)
			}
		})
	}
}
