package engine_test

import (
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestArgumentPathThroughAList: a rule reading arguments.options.cc reads
// it through a list on the path (options: [{cc: …}, …]) element by
// element, as the tool reads every element. Before, a list on the path
// was an absent argument: the deny rule no-cc-outside did not hold and the
// outsider was copied in.
func TestArgumentPathThroughAList(t *testing.T) {
	f := enginetest.New(t, mailPolicy, enginetest.Options{Routes: []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}})
	_, tok := f.Agent(t, "researcher", 1, nil)
	for _, tc := range []struct {
		name, args     string
		status         int
		reason, action string
	}{
		{"an outsider in a list of objects", `{"to":"a@ours.example","options":[{"cc":"b@ours.example"},{"cc":"eve@evil.example"}]}`, 403, "rule_deny", "call:mail/send_email"},
		{"an outsider in a list within a list", `{"to":"a@ours.example","options":[{"cc":["b@ours.example","eve@evil.example"]}]}`, 403, "rule_deny", "call:mail/send_email"},
		{"ours only", `{"to":"a@ours.example","options":[{"cc":"b@ours.example"},{"bcc":"x"}]}`, 200, "rule_allow", "call:mail/send_email"},
		{"a key in another case in an element", `{"to":"a@ours.example","options":[{"CC":"eve@evil.example"}]}`, 400, "bad_request", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, f.Engine, engine.Request{Method: "POST", Path: "/mcp", Body: callBody("send_email", tc.args), Token: tok, Source: engine.SourceGateway})
			if d.Status != tc.status || d.Reason != tc.reason || tc.action != "" && d.Action != tc.action {
				t.Fatalf("got %d %s %q (%s), want %d %s %q", d.Status, d.Reason, d.Action, d.Message, tc.status, tc.reason, tc.action)
			}
		})
	}
}
