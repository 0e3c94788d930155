package replay_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/replay"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// recordedPolicies decided the recorded trail.
const recordedPolicies = `
name: mail
appliesTo: {tags: [mailer]}
rules:
  - {name: no-drafts, effect: deny, actions: ["read:drafts/*"]}
  - name: test-tokens
    effect: deny
    actions: ["call:mail/auth"]
    conditions: {context: {arguments.token: {matches: "test-*"}}}
  - {name: calls, effect: allow, actions: ["call:mail/*"]}
  - {name: reads, effect: allow, actions: ["read:*"]}
delegation: {maxDepth: 2}
---
name: ops
appliesTo: {tags: [ops]}
rules:
  - name: staging-only
    effect: deny
    actions: ["write:config"]
    conditions: {context: {header.x-env: {matches: prod}}}
  - name: office-hours
    effect: allow
    actions: ["write:*"]
    conditions: {time: {between: "09:00-17:00"}}
---
name: planners
appliesTo: {tags: [planner]}
rules:
  - {name: all, effect: allow, actions: ["read:*", "write:*", "call:*"]}
delegation: {maxDepth: 2}
---
name: payers
appliesTo: {tags: [payer]}
rules:
  - {name: payments, effect: approve, actions: ["write:payments"]}
  - {name: reads, effect: allow, actions: ["read:*"]}
`

// candidatePolicies: mail to outside addresses denied (an argument no
// recorded policy read), drafts readable, delegated secret reads denied,
// a password argument read (redacted in the recorded arguments), the
// token argument and the header the recorded policies read still read,
// a header they did not read now read, office hours shortened.
const candidatePolicies = `
name: mail
appliesTo: {tags: [mailer]}
rules:
  - name: external
    effect: deny
    actions: ["call:mail/send_email"]
    conditions: {context: {arguments.to: {not_matches: "*@ours.example"}}}
  - name: no-weak-password
    effect: deny
    actions: ["call:mail/login"]
    conditions: {context: {arguments.password: {matches: "hunter*"}}}
  - name: no-delegated-secrets
    effect: deny
    actions: ["read:secret/*"]
    conditions: {chain: {root: [planner]}}
  - name: test-tokens
    effect: deny
    actions: ["call:mail/auth"]
    conditions: {context: {arguments.token: {matches: "test-*"}}}
  - {name: calls, effect: allow, actions: ["call:mail/*"]}
  - {name: reads, effect: allow, actions: ["read:*"]}
delegation: {maxDepth: 2}
---
name: ops
appliesTo: {tags: [ops]}
rules:
  - name: prod-config
    effect: deny
    actions: ["write:config"]
    conditions: {context: {header.x-env: {matches: prod}}}
  - name: flags-team
    effect: deny
    actions: ["write:flags"]
    conditions: {context: {header.x-team: {not_matches: platform}}}
  - name: office-hours
    effect: allow
    actions: ["write:*"]
    conditions: {time: {between: "09:00-12:00"}}
---
name: planners
appliesTo: {tags: [planner]}
rules:
  - {name: all, effect: allow, actions: ["read:*", "write:*", "call:*"]}
delegation: {maxDepth: 2}
---
name: payers
appliesTo: {tags: [payer]}
rules:
  - {name: payments, effect: allow, actions: ["write:payments"]}
  - {name: reads, effect: approve, actions: ["read:*"]}
`

// clock is the engine's time, set by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func callBody(tool, args string) []byte {
	return []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + `}}`)
}

// trail records real decisions of a real engine over a real SQLite store,
// with arguments recorded (AUDIT_ARGUMENTS), and returns the store and the
// record id of each named request.
func trail(t *testing.T) (*store.SQLite, map[string]string) {
	t.Helper()
	ctx := context.Background()
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: day.Add(10 * time.Hour)}
	f := enginetest.New(t, recordedPolicies, enginetest.Options{Now: clk.now,
		Routes: []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}})
	w, err := audit.NewWriter(ctx, f.Store, audit.WriterConfig{Arguments: audit.ArgumentsConfig{Record: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	e, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer, Agents: f.Agents,
		Names: f.Store, Policies: f.Policies, Limiter: f.Limiter, Recorder: w, Now: clk.now, Approvals: f.Store,
		Routes: []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}})
	if err != nil {
		t.Fatal(err)
	}
	token := func(name string, tier trust.Tier, tags ...string) string {
		a, _ := f.Agent(t, name, tier, tags, name+".mesh")
		tok, _, err := f.Issuer.Issue(a, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	mailer, ops, planner := token("mailer", trust.Verified, "mailer"), token("ops", trust.Trusted, "ops"), token("planner", trust.Trusted, "planner")
	ids := map[string]string{}
	var delegation string
	do := func(name string, at time.Duration, r engine.Request, wantAllowed bool) {
		t.Helper()
		clk.set(day.Add(at))
		if r.Source == "" {
			r.Source = engine.SourceGateway
		}
		d, err := e.Check(ctx, &r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != wantAllowed {
			t.Fatalf("%s: recorded %s %d %s (%s), want allowed=%t", name, d.Effect, d.Status, d.Reason, d.Message, wantAllowed)
		}
		ids[name] = "aud_" + strings.TrimPrefix(d.ID, "dec_")
		if d.Delegation != "" {
			delegation = d.Delegation
		}
	}
	h := time.Hour
	do("mail inside", 10*h, engine.Request{Token: mailer, Method: "POST", Path: "/mcp", Body: callBody("send_email", `{"to":"ann@ours.example","body":"hi"}`)}, true)
	do("mail outside", 10*h+time.Minute, engine.Request{Token: mailer, Method: "POST", Path: "/mcp", Body: callBody("send_email", `{"to":"eve@evil.example","body":"hi"}`)}, true)
	do("login", 10*h+2*time.Minute, engine.Request{Token: mailer, Method: "POST", Path: "/mcp", Body: callBody("login", `{"user":"ann","password":"hunter2"}`)}, true)
	do("mail too large", 10*h+3*time.Minute, engine.Request{Token: mailer, Method: "POST", Path: "/mcp",
		Body: callBody("send_email", `{"to":"eve@evil.example","body":"`+strings.Repeat("x", audit.MaxRecordedArguments)+`"}`)}, true)
	do("drafts", 10*h+4*time.Minute, engine.Request{Token: mailer, Method: "GET", Path: "/drafts/1"}, false)
	do("deploy at 10", 10*h+5*time.Minute, engine.Request{Token: ops, Method: "POST", Path: "/deploy"}, true)
	do("deploy at 14", 14*h, engine.Request{Token: ops, Method: "POST", Path: "/deploy"}, true)
	do("deploy at 20", 20*h, engine.Request{Token: ops, Method: "POST", Path: "/deploy"}, false)
	do("config without env", 10*h+6*time.Minute, engine.Request{Token: ops, Method: "POST", Path: "/config"}, true)
	do("config in prod", 10*h+6*time.Minute+time.Second, engine.Request{Token: ops, Method: "POST", Path: "/config", Headers: edge.MapHeaders{"x-env": "prod"}}, false)
	do("flags", 10*h+6*time.Minute+2*time.Second, engine.Request{Token: ops, Method: "POST", Path: "/flags", Headers: edge.MapHeaders{"x-team": "platform"}}, true)
	do("auth", 10*h+6*time.Minute+3*time.Second, engine.Request{Token: mailer, Method: "POST", Path: "/mcp", Body: callBody("auth", `{"token":"abc"}`)}, true)
	do("planner to mailer", 10*h+7*time.Minute, engine.Request{Token: planner, Method: "POST", Host: "mailer.mesh", Path: "/notify"}, true)
	do("delegated secret", 10*h+8*time.Minute, engine.Request{Token: mailer, Delegation: delegation, Method: "GET", Path: "/secret/plan"}, true)
	do("own secret", 10*h+9*time.Minute, engine.Request{Token: mailer, Method: "GET", Path: "/secret/plan"}, true)
	do("bad token", 10*h+10*time.Minute, engine.Request{Token: "not-a-token", Method: "GET", Path: "/secret/plan"}, false)
	do("api check", 10*h+11*time.Minute, engine.Request{Source: engine.SourceAPI, Token: mailer, Action: "call:mail/login", Resource: "/mcp",
		Context: map[string]any{"arguments": map[string]any{"password": "hunter2"}}}, true)
	// An approve rule: held for a person, who grants it; the retry uses it.
	// Asked today: the store judges an approval's expiry by its own clock.
	today := time.Since(day)
	clk.set(day.Add(today))
	payer := token("payer", trust.Verified, "payer")
	pay := engine.Request{Token: payer, Method: "POST", Path: "/payments"}
	do("pay asked", today, pay, false)
	pending, err := f.Store.ListApprovals(ctx, approval.Filter{Status: approval.Pending})
	if err != nil || len(pending) != 1 {
		t.Fatalf("approvals pending: %v, %v", pending, err)
	}
	// As the admin API decides: the person's answer is a record of its own.
	svc, err := approvalapi.New(ctx, approvalapi.Config{Store: f.Store, Recorder: w, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Decide(ctx, approval.Decision{ID: pending[0].ID, Approve: true, By: "alice"}, approvalapi.SourceAdmin); err != nil {
		t.Fatal(err)
	}
	do("pay granted", today+time.Second, pay, true)
	do("payer reads", today+2*time.Second, engine.Request{Token: payer, Method: "GET", Path: "/invoices/1"}, true)
	return f.Store, ids
}

func candidate(t testing.TB, yaml string) *policy.Set {
	t.Helper()
	path := filepath.Join(t.TempDir(), "candidate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := policy.Load(context.Background(), policy.File(path))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func run(t *testing.T, s *store.SQLite, set *policy.Set, opts replay.Options) replay.Report {
	t.Helper()
	r, err := replay.New(set, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ScanAuditFiltered(context.Background(), store.AuditFilter{}, func(rec audit.Record, _ string) error {
		r.Add(&rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return r.Report()
}

// TestReplayRecordByRecord: a trail recorded by the engine, replayed with
// changed policies, changes exactly the records it should — each in its
// group, named by the deciding rule before and after — and names each
// record it cannot decide again with why.
func TestReplayRecordByRecord(t *testing.T) {
	s, ids := trail(t)
	rep := run(t, s, candidate(t, candidatePolicies), replay.Options{Examples: replay.MaxExamples})

	type outcome struct{ kind, oldRule, newRule, newReason string }
	got := map[string]outcome{}
	for _, g := range rep.Changes {
		for _, ex := range g.Examples {
			got[ex.ID] = outcome{g.Kind, g.Old.Policy + "/" + g.Old.Rule, g.New.Policy + "/" + g.New.Rule, ex.NewReason}
		}
	}
	for _, n := range rep.NotRedecided {
		for _, id := range n.IDs {
			got[id] = outcome{kind: "not: " + n.Why}
		}
	}
	tests := []struct {
		record string
		want   outcome // zero: unchanged or skipped
	}{
		{"mail inside", outcome{}},
		{"mail outside", outcome{replay.AllowToDeny, "mail/calls", "mail/external", policy.ReasonRuleDeny}},
		{"login", outcome{kind: "not: " + replay.WhyRedacted}},
		{"mail too large", outcome{kind: "not: " + replay.WhyArgumentsMissing}},
		{"drafts", outcome{replay.DenyToAllow, "mail/no-drafts", "mail/reads", policy.ReasonRuleAllow}},
		{"deploy at 10", outcome{}},
		{"deploy at 14", outcome{replay.AllowToDeny, "ops/office-hours", "ops/", policy.ReasonNoMatchingRule}},
		{"deploy at 20", outcome{}},
		{"config without env", outcome{}},
		{"config in prod", outcome{}},
		{"flags", outcome{kind: "not: " + replay.WhyValueMissing}},
		{"auth", outcome{kind: "not: " + replay.WhyRedacted}},
		{"planner to mailer", outcome{}},
		{"delegated secret", outcome{replay.AllowToDeny, "mail/reads", "mail/no-delegated-secrets", policy.ReasonRuleDeny}},
		{"own secret", outcome{}},
		{"bad token", outcome{}},
		{"api check", outcome{kind: "not: " + replay.WhyRedacted}},
		{"pay asked", outcome{replay.ApproveToAllow, "payers/payments", "payers/payments", policy.ReasonRuleAllow}},
		{"pay granted", outcome{replay.ApproveToAllow, "payers/payments", "payers/payments", policy.ReasonRuleAllow}},
		{"payer reads", outcome{replay.AllowToApprove, "payers/reads", "payers/reads", policy.ReasonApprovalRequired}},
	}
	for _, tc := range tests {
		t.Run(tc.record, func(t *testing.T) {
			if g := got[ids[tc.record]]; g != tc.want {
				t.Fatalf("record %s: %+v, want %+v", ids[tc.record], g, tc.want)
			}
		})
	}
	// 21 records: 5 not decided again, 1 refused before policy, 1 a
	// person's answer to the approval, 14 decided again of which 7 changed.
	want := fmt.Sprintf("records 21 redecided 14 unchanged 7 allowToDeny 3 denyToAllow 1 approveToAllow 2 allowToApprove 1 skipped %v",
		map[string]int{replay.SkipNotPolicy: 1, replay.SkipApproval: 1})
	if g := fmt.Sprintf("records %d redecided %d unchanged %d allowToDeny %d denyToAllow %d approveToAllow %d allowToApprove %d skipped %v",
		rep.Records, rep.Redecided, rep.Unchanged, rep.AllowToDeny, rep.DenyToAllow, rep.ApproveToAllow, rep.AllowToApprove, rep.Skipped); g != want {
		t.Fatalf("counts:\n got %s\nwant %s", g, want)
	}
	if !rep.Failed([]string{replay.AllowToDeny}) || !rep.Failed([]string{replay.DenyToAllow}) || !rep.Failed([]string{replay.ApproveToAllow}) ||
		rep.Failed([]string{replay.ApproveToDeny}) {
		t.Fatal("--fail-on would not fail on the changes found")
	}
}

// TestReplayUnchangedSet: the policies that decided the trail decide it
// again the same, record for record — all but the one whose value they
// read was recorded redacted.
func TestReplayUnchangedSet(t *testing.T) {
	s, ids := trail(t)
	rep := run(t, s, candidate(t, recordedPolicies), replay.Options{})
	// The approve rule's records (asked, then granted) stay approve.
	if rep.AllowToDeny != 0 || rep.DenyToAllow != 0 || rep.Redecided != 18 || rep.Unchanged != 18 ||
		len(rep.NotRedecided) != 1 || rep.NotRedecided[0].Why != replay.WhyRedacted || rep.NotRedecided[0].IDs[0] != ids["auth"] {
		t.Fatalf("the recorded policies replayed: %+v", rep)
	}
	if rep.Failed(api.ReplayKinds) {
		t.Fatal("--fail-on fails on no change")
	}
}
