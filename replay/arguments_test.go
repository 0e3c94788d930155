package replay_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/replay"
	"github.com/meshguard/meshguard/trust"
)

// argumentsInForce read no argument; argumentsCandidate reads one through
// a list of objects (recipients.email: each element's email, as
// agentproto.Call.Argument reads it) and one that may come as a list.
const (
	argumentsInForce = `
name: mail
appliesTo: {tags: [mailer]}
rules:
  - {name: calls, effect: allow, actions: ["call:mail/*"]}
`
	argumentsCandidate = `
name: mail
appliesTo: {tags: [mailer]}
rules:
  - name: outsiders
    effect: deny
    actions: ["call:mail/send_email"]
    conditions: {context: {arguments.recipients.email: {not_matches: "*@ours.example"}}}
  - name: outsiders-to
    effect: deny
    actions: ["call:mail/send_to"]
    conditions: {context: {arguments.to: {not_matches: "*@ours.example"}}}
  - name: evil-cc
    effect: deny
    actions: ["call:mail/send_cc"]
    conditions: {context: {arguments.cc.email: {matches: "*@evil.example"}}}
  - {name: calls, effect: allow, actions: ["call:mail/*"]}
`
)

// TestReplayReadsArgumentsAsTheEngine: a record whose arguments were
// recorded (AUDIT_ARGUMENTS) but read by no policy in force is decided
// again on those arguments exactly as the engine reads a call's — a path
// through a list reads each element, a key spelt in another case is
// refused — so replay's answer for each record is what an engine running
// the candidate answers the same request. Before, replay walked the
// recorded arguments as nested objects only: recipients.email over a list
// read as absent, and a call mailing an outsider replayed as unchanged
// (allow) while the candidate denies it — a lie to the --fail-on gate.
func TestReplayReadsArgumentsAsTheEngine(t *testing.T) {
	ctx := context.Background()
	routes := []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}
	now := time.Now()
	clk := func() time.Time { return now }
	f := enginetest.New(t, argumentsInForce, enginetest.Options{Now: clk, Routes: routes})
	w, err := audit.NewWriter(ctx, f.Store, audit.WriterConfig{Arguments: audit.ArgumentsConfig{Record: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	recorded, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer, Agents: f.Agents,
		Names: f.Store, Policies: f.Policies, Limiter: f.Limiter, Recorder: w, Now: clk, Approvals: f.Store, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	_, mailer := f.Agent(t, "mailer", trust.Verified, []string{"mailer"})
	// The truth: an engine running the candidate.
	g := enginetest.New(t, argumentsCandidate, enginetest.Options{Now: clk, Routes: routes})
	_, gMailer := g.Agent(t, "mailer", trust.Verified, []string{"mailer"})

	tests := []struct{ name, tool, args string }{
		{"one insider in a list of objects", "send_email", `{"recipients":[{"email":"ann@ours.example"}]}`},
		{"an outsider in a list of objects", "send_email", `{"recipients":[{"email":"ann@ours.example"},{"email":"eve@evil.example"}]}`},
		{"an outsider in a nested list", "send_email", `{"recipients":[[{"email":"eve@evil.example"}]]}`},
		{"an object, not a list", "send_email", `{"recipients":{"email":"eve@evil.example"}}`},
		{"a list of addresses", "send_to", `{"to":["ann@ours.example","eve@evil.example"]}`},
		{"an address", "send_to", `{"to":"eve@evil.example"}`},
		{"no address", "send_to", `{"cc":"eve@evil.example"}`},
		{"an outsider copied, in a list", "send_cc", `{"cc":[{"email":"ann@ours.example"},{"email":"eve@evil.example"}]}`},
		{"insiders copied, in a list", "send_cc", `{"cc":[{"email":"ann@ours.example"}]}`},
	}
	want := map[string]string{} // record id → the candidate engine's effect
	names := map[string]string{}
	for _, tc := range tests {
		r := engine.Request{Source: engine.SourceGateway, Token: mailer, Method: "POST", Path: "/mcp", Body: callBody(tc.tool, tc.args)}
		d, err := recorded.Check(ctx, &r)
		if err != nil || !d.Allowed {
			t.Fatalf("%s: recorded %+v, %v", tc.name, d, err)
		}
		truth, err := g.Engine.Check(ctx, &engine.Request{Source: engine.SourceGateway, Token: gMailer, Method: "POST", Path: "/mcp", Body: callBody(tc.tool, tc.args)})
		if err != nil || truth.Status == 400 {
			t.Fatalf("%s: the candidate engine: %+v, %v", tc.name, truth, err)
		}
		want["aud_"+d.ID[len("dec_"):]] = truth.Effect
		names["aud_"+d.ID[len("dec_"):]] = tc.name
	}
	// A key in another case: the candidate engine refuses the call (400)
	// rather than decide it on an absent argument; replay says so.
	folded := engine.Request{Source: engine.SourceGateway, Token: mailer, Method: "POST", Path: "/mcp", Body: callBody("send_to", `{"To":"eve@evil.example"}`)}
	d, err := recorded.Check(ctx, &folded)
	if err != nil || !d.Allowed {
		t.Fatalf("recorded the folded call: %+v, %v", d, err)
	}
	truth, err := g.Engine.Check(ctx, &engine.Request{Source: engine.SourceGateway, Token: gMailer, Method: "POST", Path: "/mcp", Body: callBody("send_to", `{"To":"eve@evil.example"}`)})
	if err != nil || truth.Status != 400 {
		t.Fatalf("the candidate engine on the folded call: %+v, %v", truth, err)
	}
	want["aud_"+d.ID[len("dec_"):]] = "not: " + replay.WhyArgumentCase
	names["aud_"+d.ID[len("dec_"):]] = "a key in another case"
	rep := run(t, f.Store, candidate(t, argumentsCandidate), replay.Options{Examples: replay.MaxExamples})
	got := map[string]string{}
	for _, g := range rep.Changes {
		for _, ex := range g.Examples {
			got[ex.ID] = g.New.Decision
		}
	}
	for _, n := range rep.NotRedecided {
		for _, id := range n.IDs {
			got[id] = "not: " + n.Why
		}
	}
	for id, eff := range want {
		g, changed := got[id]
		if !changed {
			g = "allow" // unchanged
		}
		if g != eff {
			t.Errorf("record %s (%s): replay says %s; the candidate engine decides %s", id, names[id], g, eff)
		}
	}
	if rep.Redecided != len(tests) {
		t.Fatalf("redecided %d of %d: %+v", rep.Redecided, len(tests), rep)
	}
}
