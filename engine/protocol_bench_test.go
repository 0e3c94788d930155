package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// benchBody2K is a tools/call of about 2 KB, as the budget names
// it (agentproto's BenchmarkParseMCP parses the same shape).
func benchBody2K() []byte {
	var sb strings.Builder
	sb.WriteString(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"alice@ours.example","subject":"Quarterly report","options":{"cc":["bob@ours.example","carol@ours.example"],"priority":3},"body":"`)
	sb.WriteString(strings.Repeat("Lorem ipsum dolor sit amet. ", 64))
	sb.WriteString(`"},"_meta":{"progressToken":"p-1"}}}`)
	return []byte(sb.String())
}

// BenchmarkCheckMCP is what deciding an MCP call on its body adds to a
// Check (docs/performance.md, "MCP"): "route-action" is the same decision
// with the action set by the proxy's route and no body, the baseline of
// the same run; "body" reads the action from a 2 KB tools/call; "arguments"
// also decodes the arguments for a rule that reads arguments.to.
func BenchmarkCheckMCP(b *testing.B) {
	const plain = "name: mail\nrules:\n  - {name: tools, effect: allow, actions: [\"call:mail/*\"]}\n"
	const args = "name: mail\nrules:\n  - {name: outside, effect: deny, actions: [\"call:mail/send_email\"], conditions: {context: {arguments.to: {not_matches: \"*@ours.example\"}}}}\n  - {name: tools, effect: allow, actions: [\"call:mail/*\"]}\n"
	routes := []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}
	body := benchBody2K()
	for _, tc := range []struct {
		name, policy string
		req          engine.Request
	}{
		{"route-action", plain, engine.Request{Method: "POST", Host: "mail.mesh", Path: "/mcp", RouteAction: "call:mail/send_email"}},
		{"body", plain, engine.Request{Method: "POST", Host: "mail.mesh", Path: "/mcp", Body: body}},
		{"arguments", args, engine.Request{Method: "POST", Host: "mail.mesh", Path: "/mcp", Body: body}},
	} {
		f := enginetest.New(b, tc.policy, enginetest.Options{Routes: routes})
		_, tok := f.Agent(b, "emailer", 1, nil)
		e, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer,
			Agents: f.Agents, Policies: f.Policies, Limiter: f.Limiter, Routes: routes})
		if err != nil {
			b.Fatal(err)
		}
		tc.req.Token, tc.req.Source = tok, engine.SourceExtAuthzGRPC
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := tc.req
				d, err := e.Check(context.Background(), &r)
				if err != nil || !d.Allowed || d.Action != "call:mail/send_email" {
					b.Fatal(d, err)
				}
			}
		})
	}
}
