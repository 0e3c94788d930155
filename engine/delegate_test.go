package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

func delegate(t *testing.T, e *engine.Engine, r engine.DelegateRequest) engine.Delegation {
	t.Helper()
	out, err := e.Delegate(context.Background(), &r)
	if err != nil {
		t.Fatalf("Delegate: %v", err)
	}
	return out
}

// records reads the fixture's audit trail, checking its chain.
func records(t *testing.T, f *enginetest.Fixture) []audit.Record {
	t.Helper()
	var got []audit.Record
	v := audit.NewVerifier(audit.GenesisHash)
	if err := f.Store.ScanAudit(context.Background(), func(r audit.Record) error { got = append(got, r); return v.Next(&r) }); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestDelegateRefusals: each refusal of Delegate is a value with the status
// and reason code POST /v1/delegations answers, mints nothing, and leaves
// one audit record saying so.
func TestDelegateRefusals(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	e := m.F.Engine
	_, scraperT := m.F.Agent(t, "scraper", trust.Untrusted, []string{"orchestrator"})
	ghostly, _ := m.F.Agent(t, "ghostly", trust.Verified, []string{"researcher"})
	m.F.Revoke(t, ghostly.ID)
	as := func(tok, parent string) engine.Request { return engine.Request{Token: tok, Delegation: parent} }

	toRes := delegate(t, e, engine.DelegateRequest{Caller: as(m.OrchT, ""), Delegate: "researcher", Actions: []string{"read:*", "write:email"}, MaxDepth: 2})
	oneHop := delegate(t, e, engine.DelegateRequest{Caller: as(m.OrchT, ""), Delegate: "researcher", Actions: []string{"read:*"}})
	readsOnly := delegate(t, e, engine.DelegateRequest{Caller: as(m.OrchT, ""), Delegate: m.Res.ID, Actions: []string{"read:*"}, MaxDepth: 2})
	for _, d := range []engine.Delegation{toRes, oneHop, readsOnly} {
		if !d.Allowed || d.Status != 201 || d.Delegation == "" {
			t.Fatalf("setup: %+v", d)
		}
	}
	toMail := delegate(t, e, engine.DelegateRequest{Caller: as(m.ResT, toRes.Delegation), Delegate: "emailer", Actions: []string{"write:email"}})
	if !toMail.Allowed {
		t.Fatalf("setup: %+v", toMail)
	}
	revokedTok, _, err := m.F.Issuer.Issue(m.Orch, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m.F.RevokeToken(t, revokedTok)

	tests := []struct {
		name   string
		req    engine.DelegateRequest
		status int
		reason string
	}{
		{"no token", engine.DelegateRequest{Delegate: "researcher", Actions: []string{"read:*"}}, 401, engine.ReasonUnauthorized},
		{"bad token", engine.DelegateRequest{Caller: as("x.y.z", ""), Delegate: "researcher", Actions: []string{"read:*"}}, 401, engine.ReasonUnauthorized},
		{"revoked token", engine.DelegateRequest{Caller: as(revokedTok, ""), Delegate: "researcher", Actions: []string{"read:*"}}, 401, engine.ReasonTokenRevoked},
		{"malformed request", engine.DelegateRequest{Caller: as(m.OrchT, ""), Delegate: "researcher", Actions: []string{"read everything"}}, 400, engine.ReasonBadRequest},
		{"a control character in an action", engine.DelegateRequest{Caller: as(m.OrchT, ""), Delegate: "researcher", Actions: []string{"read:\x1b[2J"}}, 400, engine.ReasonBadRequest},
		{"maxDepth out of range", engine.DelegateRequest{Caller: as(m.OrchT, ""), Delegate: "researcher", Actions: []string{"read:*"}, MaxDepth: policy.MaxDelegation + 1}, 400, engine.ReasonBadRequest},
		{"unknown delegate", engine.DelegateRequest{Caller: as(m.OrchT, ""), Delegate: "ghost", Actions: []string{"read:*"}}, 400, engine.ReasonBadRequest},
		{"to itself", engine.DelegateRequest{Caller: as(m.OrchT, ""), Delegate: m.Orch.ID, Actions: []string{"read:*"}}, 400, engine.ReasonBadRequest},
		{"revoked delegate", engine.DelegateRequest{Caller: as(m.OrchT, ""), Delegate: "ghostly", Actions: []string{"read:*"}}, 403, policy.ReasonDelegationRevoked},
		{"not permitted", engine.DelegateRequest{Caller: as(m.MailT, ""), Delegate: "researcher", Actions: []string{"read:*"}}, 403, policy.ReasonDelegationNotPermitted},
		{"untrusted delegator", engine.DelegateRequest{Caller: as(scraperT, ""), Delegate: "researcher", Actions: []string{"read:*"}}, 403, policy.ReasonDelegationUntrusted},
		{"a stolen parent token", engine.DelegateRequest{Caller: as(m.MailT, toRes.Delegation), Delegate: "researcher", Actions: []string{"read:*"}}, 403, policy.ReasonDelegationActorMismatch},
		{"a cycle", engine.DelegateRequest{Caller: as(m.MailT, toMail.Delegation), Delegate: "orchestrator", Actions: []string{"read:*"}}, 403, policy.ReasonDelegationCycle},
		{"depth: the parent allows one hop", engine.DelegateRequest{Caller: as(m.ResT, oneHop.Delegation), Delegate: "emailer", Actions: []string{"read:*"}}, 403, policy.ReasonDelegationDepth},
		{"depth: asking further than the parent", engine.DelegateRequest{Caller: as(m.ResT, toRes.Delegation), Delegate: "emailer", Actions: []string{"write:email"}, MaxDepth: 2}, 403, policy.ReasonDelegationDepth},
		{"scope outside the parent's", engine.DelegateRequest{Caller: as(m.ResT, readsOnly.Delegation), Delegate: "emailer", Actions: []string{"write:email"}}, 403, policy.ReasonDelegationScope},
		{"scope wider than the parent's", engine.DelegateRequest{Caller: as(m.ResT, toRes.Delegation), Delegate: "emailer", Actions: []string{"*"}}, 403, policy.ReasonDelegationScope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(records(t, m.F))
			out := delegate(t, e, tc.req)
			if out.Allowed || out.Effect != "deny" || out.Status != tc.status || out.Reason != tc.reason || out.Message == "" || out.Delegation != "" || out.Grant.ID != "" {
				t.Fatalf("%+v; want a %d %s refusal minting nothing", out, tc.status, tc.reason)
			}
			got := records(t, m.F)
			if len(got) != before+1 {
				t.Fatalf("%d new records, want 1", len(got)-before)
			}
			r := got[len(got)-1]
			if r.DecisionID != out.ID || r.Decision != "deny" || r.Status != tc.status || r.Reason != tc.reason || r.Source != string(engine.SourceDelegation) ||
				r.Action != engine.DelegateAction+tc.req.Delegate || r.TraceID != out.TraceID {
				t.Fatalf("record %+v of %+v", r, out)
			}
		})
	}
}

// TestDelegateRecord: a minted delegation is recorded like a decision — who
// asked, for whom (the chain), to whom, the scope asked for — joined to the
// caller's trace; the token it mints carries that trace on to the delegate's
// checks; and a delegation that cannot be recorded is not minted.
func TestDelegateRecord(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	e := m.F.Engine
	toRes := delegate(t, e, engine.DelegateRequest{Caller: engine.Request{Token: m.OrchT}, Delegate: "researcher", Actions: []string{"read:*", "write:email"}, MaxDepth: 2})

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := engine.DelegateRequest{Caller: engine.Request{Token: m.ResT, Delegation: toRes.Delegation, SourceAddress: "10.0.0.9"}, Delegate: m.Mail.ID, Actions: []string{"write:email"}}
	r.Caller.SetTraceparent(tp)
	out := delegate(t, e, r)
	if !out.Allowed || out.Status != 201 || out.TargetAgent != m.Mail.ID || out.AgentID != m.Res.ID ||
		strings.Join(out.Grant.Actors, ",") != m.Res.ID+","+m.Mail.ID || out.Grant.Root != m.Orch.ID || out.Grant.MaxChain != 2 ||
		out.Grant.ExpiresAt.After(toRes.Grant.ExpiresAt) || out.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("minted: %+v", out)
	}
	got := records(t, m.F)
	if len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
	rec := got[1]
	if rec.DecisionID != out.ID || rec.ID != "aud_"+out.ID[len("dec_"):] || rec.Decision != "allow" || rec.Status != 201 ||
		rec.Source != "delegation" || rec.Action != "delegate:"+m.Mail.ID || rec.Resource != m.Mail.ID ||
		rec.AgentID != m.Res.ID || rec.TrustTier != "verified" || strings.Join(rec.Chain, ",") != m.Orch.ID+","+m.Res.ID || rec.DelegationDepth != 1 ||
		rec.TraceID != out.TraceID || rec.SpanID != out.SpanID || rec.SourceAddress != "10.0.0.9" || rec.Reason != policy.ReasonRuleAllow ||
		rec.PolicyRevision == "" || rec.Mode != "enforce" {
		t.Fatalf("record %+v", rec)
	}
	if scope, ok := rec.Context["scope"].([]any); !ok || len(scope) != 1 || scope[0] != "write:email" {
		t.Fatalf("record context %#v", rec.Context)
	}

	// The delegate's check, without a traceparent of its own, joins the
	// trace of the delegation that handed it the task.
	d := check(t, e, engine.Request{Token: m.MailT, Delegation: out.Delegation, Method: "POST", Path: "/email?to=team@example.com"})
	if !d.Allowed || d.TraceID != out.TraceID {
		t.Fatalf("the delegate's check: %+v; want it allowed in trace %s", d, out.TraceID)
	}

	// Fail closed: no record, no token.
	failing, err := engine.New(engine.Config{Tokens: m.F.Cached, Delegations: m.F.Cached, Delegator: m.F.Issuer,
		Agents: m.F.Agents, Names: m.F.Store, Policies: m.F.Policies, Limiter: m.F.Limiter, Recorder: failingRecorder{}})
	if err != nil {
		t.Fatal(err)
	}
	lost, err := failing.Delegate(context.Background(), &engine.DelegateRequest{Caller: engine.Request{Token: m.OrchT}, Delegate: "researcher", Actions: []string{"read:*"}})
	if !errors.Is(err, engine.ErrInternal) || lost.Delegation != "" || lost.Allowed {
		t.Fatalf("with a failing recorder: %+v, %v; want ErrInternal and no token", lost, err)
	}
}

// TestMintedExpiry: a minted delegation token, from Delegate or from a hop
// at Check, never outlives the caller's token nor the parent delegation,
// whichever ends first, nor the lifetime asked for. Each case makes a
// different one of them the earliest, well before the others, so dropping
// any one bound in handOn moves the expiry.
func TestMintedExpiry(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	m := newMesh(t, enginetest.Options{Now: func() time.Time { return t0 }})
	e := m.F.Engine
	issue := func(a identity.Agent, ttl time.Duration) string {
		t.Helper()
		tok, _, err := m.F.Issuer.Issue(a, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// parent is the orchestrator's delegation to the researcher (its own
	// token lives an hour), living ttl.
	parent := func(ttl time.Duration) string {
		t.Helper()
		p := delegate(t, e, engine.DelegateRequest{Caller: engine.Request{Token: m.OrchT}, Delegate: "researcher", Actions: []string{"read:*", "write:email"}, MaxDepth: 2, TTL: ttl})
		if !p.Allowed || !p.Grant.ExpiresAt.Equal(t0.Add(ttl)) {
			t.Fatalf("setup: parent %+v", p)
		}
		return p.Delegation
	}
	const asked = 50 * time.Minute // under DefaultDelegationTTL, which Check's hop asks for

	tests := []struct {
		name string
		mint func(t *testing.T) string // the minted token
		want time.Duration             // its lifetime from t0
	}{
		{"Delegate: the parent ends first", func(t *testing.T) string {
			return delegated(t, e, engine.DelegateRequest{Caller: engine.Request{Token: issue(m.Res, 2*time.Hour), Delegation: parent(2 * time.Minute)}, Delegate: "emailer", Actions: []string{"write:email"}, TTL: asked})
		}, 2 * time.Minute},
		{"Delegate: the caller's token ends first", func(t *testing.T) string {
			return delegated(t, e, engine.DelegateRequest{Caller: engine.Request{Token: issue(m.Res, 5*time.Minute), Delegation: parent(45 * time.Minute)}, Delegate: "emailer", Actions: []string{"write:email"}, TTL: asked})
		}, 5 * time.Minute},
		{"Delegate: no parent, the caller's token ends first", func(t *testing.T) string {
			return delegated(t, e, engine.DelegateRequest{Caller: engine.Request{Token: issue(m.Orch, 5*time.Minute)}, Delegate: "researcher", Actions: []string{"read:*"}, TTL: asked})
		}, 5 * time.Minute},
		{"Delegate: the lifetime asked for ends first", func(t *testing.T) string {
			return delegated(t, e, engine.DelegateRequest{Caller: engine.Request{Token: issue(m.Res, 2*time.Hour), Delegation: parent(45 * time.Minute)}, Delegate: "emailer", Actions: []string{"write:email"}, TTL: 10 * time.Minute})
		}, 10 * time.Minute},
		{"Check: the parent ends first", func(t *testing.T) string {
			return handedOn(t, e, engine.Request{Token: issue(m.Res, 2*time.Hour), Delegation: parent(2 * time.Minute), Method: "GET", Host: "emailer.mesh", Path: "/papers"})
		}, 2 * time.Minute},
		{"Check: the caller's token ends first", func(t *testing.T) string {
			return handedOn(t, e, engine.Request{Token: issue(m.Res, 5*time.Minute), Delegation: parent(45 * time.Minute), Method: "GET", Host: "emailer.mesh", Path: "/papers"})
		}, 5 * time.Minute},
		{"Check: no parent, the caller's token ends first", func(t *testing.T) string {
			return handedOn(t, e, engine.Request{Token: issue(m.Orch, 5*time.Minute), Method: "GET", Host: "researcher.mesh", Path: "/papers"})
		}, 5 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Read the expiry back from the token itself, as the next hop does.
			g, err := m.F.Cached.VerifyDelegation(tc.mint(t))
			if err != nil {
				t.Fatal(err)
			}
			if want := t0.Add(tc.want); !g.ExpiresAt.Equal(want) {
				t.Fatalf("the minted token expires at %s (+%s); want %s (+%s)", g.ExpiresAt, g.ExpiresAt.Sub(t0), want, tc.want)
			}
		})
	}
}

// delegated is the token Delegate mints for r; it fails the test on a refusal.
func delegated(t *testing.T, e *engine.Engine, r engine.DelegateRequest) string {
	t.Helper()
	out := delegate(t, e, r)
	if !out.Allowed || out.Delegation == "" {
		t.Fatalf("Delegate: %+v; want a token", out)
	}
	return out.Delegation
}

// handedOn is the token a hop at Check mints for r's target; it fails the
// test if the hop mints none.
func handedOn(t *testing.T, e *engine.Engine, r engine.Request) string {
	t.Helper()
	d := check(t, e, r)
	if !d.Allowed || d.Delegation == "" {
		t.Fatalf("Check: %+v; want a hop that mints a token", d)
	}
	return d.Delegation
}
