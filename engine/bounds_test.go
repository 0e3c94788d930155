package engine_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/policy"
)

// TestInputBoundsAreExact holds each bound the engine puts on what it
// reads (docs/enforcement.md, "Bounds": path 8 KiB, host 259 bytes, method
// 16 bytes, peer principal 2 KiB, action 1 KiB, resource 4 KiB, context 8
// KiB of JSON and 64 keys) at its value and one past it: input exactly at
// a bound is decided as any other, one byte or key more is a 400 whose
// message names the field and the limit.
func TestInputBoundsAreExact(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	// A valid SPIFFE ID of exactly the principal's limit, bound to the
	// emailer: at the limit it is the emailer without a token.
	const td = "spiffe://example.org/"
	principal := td + strings.Repeat("p", engine.MaxPrincipalLen-len(td))
	m.F.Bind(t, m.Mail.ID, principal)

	// contextOf is a context whose JSON is exactly n bytes: {"k":"…"}.
	contextOf := func(n int) map[string]any {
		return map[string]any{"k": strings.Repeat("c", n-len(`{"k":""}`))}
	}
	keys := func(n int) map[string]any {
		c := make(map[string]any, n)
		for i := range n {
			c["k"+strconv.Itoa(i)] = "v"
		}
		return c
	}
	api := func(action, resource string, ctx map[string]any) engine.Request {
		return engine.Request{Source: engine.SourceAPI, Token: m.MailT, Action: action, Resource: resource, Context: ctx}
	}
	tests := []struct {
		name   string
		r      engine.Request
		status int
		reason string
		msg    string // the 400's message
	}{
		{"path at 8 KiB", engine.Request{Token: m.MailT, Method: "GET", Path: "/" + strings.Repeat("a", engine.MaxPathLen-1)}, 200, policy.ReasonRuleAllow, ""},
		{"path one byte over", engine.Request{Token: m.MailT, Method: "GET", Path: "/" + strings.Repeat("a", engine.MaxPathLen)}, 400, engine.ReasonBadRequest,
			"path is longer than the limit of 8192 bytes"},
		{"host at 259 bytes", engine.Request{Token: m.MailT, Method: "GET", Host: strings.Repeat("h", engine.MaxHostLen), Path: "/contacts"}, 200, policy.ReasonRuleAllow, ""},
		{"host one byte over", engine.Request{Token: m.MailT, Method: "GET", Host: strings.Repeat("h", engine.MaxHostLen+1), Path: "/contacts"}, 400, engine.ReasonBadRequest,
			"host is longer than the limit of 259 bytes"},
		// A 16-byte method is read, and maps to no verb.
		{"method at 16 bytes", engine.Request{Token: m.MailT, Method: strings.Repeat("M", 16), Path: "/contacts"}, 403, engine.ReasonActionUnresolved, ""},
		{"method one byte over", engine.Request{Token: m.MailT, Method: strings.Repeat("M", 17), Path: "/contacts"}, 400, engine.ReasonBadRequest,
			"method is longer than the limit of 16 bytes"},
		{"principal at 2 KiB", engine.Request{Principal: principal, Method: "GET", Path: "/contacts"}, 200, policy.ReasonRuleAllow, ""},
		{"principal one byte over", engine.Request{Principal: principal + "p", Method: "GET", Path: "/contacts"}, 400, engine.ReasonBadRequest,
			"principal is longer than the limit of 2048 bytes"},
		{"action at 1 KiB", api("read:"+strings.Repeat("a", engine.MaxActionLen-len("read:")), "", nil), 200, policy.ReasonRuleAllow, ""},
		{"action one byte over", api("read:"+strings.Repeat("a", engine.MaxActionLen-len("read:")+1), "", nil), 400, engine.ReasonBadRequest,
			"action is longer than the limit of 1024 bytes"},
		{"resource at 4 KiB", api("read:contacts", "/"+strings.Repeat("r", engine.MaxResourceLen-1), nil), 200, policy.ReasonRuleAllow, ""},
		{"resource one byte over", api("read:contacts", "/"+strings.Repeat("r", engine.MaxResourceLen), nil), 400, engine.ReasonBadRequest,
			"resource is longer than the limit of 4096 bytes"},
		{"context of 64 keys", api("read:contacts", "", keys(engine.MaxContextKeys)), 200, policy.ReasonRuleAllow, ""},
		{"context of 65 keys", api("read:contacts", "", keys(engine.MaxContextKeys+1)), 400, engine.ReasonBadRequest,
			"context has more than 64 keys"},
		{"context of 8 KiB of JSON", api("read:contacts", "", contextOf(engine.MaxContextLen)), 200, policy.ReasonRuleAllow, ""},
		{"context one byte over", api("read:contacts", "", contextOf(engine.MaxContextLen+1)), 400, engine.ReasonBadRequest,
			"context is larger than the limit of 8192 bytes of JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, m.F.Engine, tc.r)
			if d.Status != tc.status || d.Reason != tc.reason {
				t.Fatalf("got %d %s (%s), want %d %s", d.Status, d.Reason, d.Message, tc.status, tc.reason)
			}
			if tc.msg != "" && d.Message != tc.msg {
				t.Fatalf("message %q, want %q", d.Message, tc.msg)
			}
			if tc.status == 200 && d.AgentID != m.Mail.ID {
				t.Fatalf("decided for %q, want the emailer", d.AgentID)
			}
		})
	}
}

// TestControlCharactersAreExactlyC0AndDEL: the engine refuses C0 control
// characters and DEL in what it reads (a NUL breaks PostgreSQL's text
// columns, ESC an operator's terminal), and nothing else: a space (0x20)
// and '~' (0x7e) are ordinary characters of a resource.
func TestControlCharactersAreExactlyC0AndDEL(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	tests := []struct {
		resource string
		status   int
	}{
		{"/a\x1fb", 400},
		{"/a b", 200},
		{"/a~b", 200},
		{"/a\x7fb", 400},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.resource), func(t *testing.T) {
			d := check(t, m.F.Engine, engine.Request{Source: engine.SourceAPI, Token: m.MailT, Action: "read:contacts", Resource: tc.resource})
			if d.Status != tc.status {
				t.Fatalf("got %d %s (%s), want %d", d.Status, d.Reason, d.Message, tc.status)
			}
			if tc.status == 400 && d.Message != "resource contains a control character" {
				t.Fatalf("message %q", d.Message)
			}
		})
	}
}
