package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

type mesh = enginetest.Mesh

func newMesh(t *testing.T, opts enginetest.Options) *mesh { return enginetest.NewMesh(t, opts) }

func check(t *testing.T, e *engine.Engine, r engine.Request) engine.Decision {
	t.Helper()
	d, err := e.Check(context.Background(), &r)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return d
}

func TestDelegationChainThroughTheEngine(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	e := m.F.Engine

	// orchestrator → researcher: allowed, and the researcher gets a token.
	d := check(t, e, engine.Request{Source: engine.SourceExtAuthzGRPC, Token: m.OrchT, Method: "POST", Host: "researcher.mesh:8080", Path: "/research/agents?x=1"})
	if !d.Allowed || d.Status != 200 || d.Action != "write:research/agents" || d.Resource != "/research/agents" || d.TargetAgent != m.Res.ID || d.Delegation == "" {
		t.Fatalf("orchestrator → researcher: %+v", d)
	}
	toRes := d.Delegation

	// researcher → emailer, carrying the orchestrator's delegation.
	d = check(t, e, engine.Request{Token: m.ResT, Delegation: toRes, Method: "POST", Host: "emailer.mesh", Path: "/email?to=team@example.com"})
	if !d.Allowed || d.TargetAgent != m.Mail.ID || strings.Join(d.Chain, ",") != m.Orch.ID+","+m.Res.ID {
		t.Fatalf("researcher → emailer: %+v", d)
	}
	toMail := d.Delegation

	// The emailer sends, acting for orchestrator → researcher.
	d = check(t, e, engine.Request{Token: m.MailT, Delegation: toMail, Method: "POST", Host: "smtp.example.com", Path: "/email?to=team@example.com"})
	if !d.Allowed || d.Policy != "emailers" || d.Rule != "send" || len(d.Chain) != 3 || d.Chain[2] != m.Mail.ID || d.Delegation != "" {
		t.Fatalf("emailer sends: %+v", d)
	}

	// Inside the orchestrator's ceiling.
	d = check(t, e, engine.Request{Token: m.MailT, Delegation: toMail, Method: "GET", Host: "smtp.example.com", Path: "/contacts"})
	if !d.Allowed {
		t.Fatalf("a read is inside the ceiling: %+v", d)
	}
	// Outside it: the researcher may write notes on its own account, not
	// on the orchestrator's.
	if d = check(t, e, engine.Request{Token: m.ResT, Method: "POST", Path: "/notes/x"}); !d.Allowed {
		t.Fatalf("researcher's own notes: %+v", d)
	}
	d = check(t, e, engine.Request{Token: m.ResT, Delegation: toRes, Method: "POST", Path: "/notes/x"})
	if d.Allowed || d.Status != 403 || d.Reason != policy.ReasonDelegationCeiling || d.Policy != "orchestrators" {
		t.Fatalf("outside the ceiling: %+v", d)
	}

	// A stolen delegation token is useless to another agent.
	d = check(t, e, engine.Request{Token: m.OrchT, Delegation: toMail, Method: "POST", Path: "/email"})
	if d.Allowed || d.Status != 403 || d.Reason != policy.ReasonDelegationActorMismatch {
		t.Fatalf("stolen delegation token: %+v", d)
	}

	// The emailer may not hand on (no delegation block): denied at the boundary.
	d = check(t, e, engine.Request{Token: m.MailT, Method: "GET", Host: "researcher.mesh", Path: "/papers"})
	if d.Allowed || d.Reason != policy.ReasonDelegationNotPermitted || d.Delegation != "" {
		t.Fatalf("emailer → researcher: %+v", d)
	}

	// Revoking the researcher stops the chain.
	m.F.Revoke(t, m.Res.ID)
	d = check(t, e, engine.Request{Token: m.MailT, Delegation: toMail, Method: "POST", Path: "/email?to=a@example.com"})
	if d.Allowed || d.Reason != policy.ReasonDelegationRevoked {
		t.Fatalf("revoked member: %+v", d)
	}
	d = check(t, e, engine.Request{Token: m.ResT, Method: "GET", Path: "/papers"})
	if d.Allowed || d.Status != 401 || d.Reason != engine.ReasonAgentRevoked {
		t.Fatalf("revoked actor: %+v", d)
	}
}

func TestDepthDenial(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	f := m.F
	_, extraT := f.Agent(t, "assistant", trust.Verified, []string{"researcher"}, "assistant.mesh")
	// researcher → assistant (1 hop from the researcher), then assistant →
	// emailer would be 2 hops from the researcher, whose maxDepth is 1.
	d := check(t, f.Engine, engine.Request{Token: m.ResT, Method: "GET", Host: "assistant.mesh", Path: "/papers"})
	if !d.Allowed {
		t.Fatalf("researcher → assistant: %+v", d)
	}
	d = check(t, f.Engine, engine.Request{Token: extraT, Delegation: d.Delegation, Method: "GET", Host: "emailer.mesh", Path: "/papers"})
	if d.Allowed || d.Reason != policy.ReasonDelegationDepth {
		t.Fatalf("depth: %+v", d)
	}
}

func TestAuthenticationAndInput(t *testing.T) {
	m := newMesh(t, enginetest.Options{Routes: []engine.Route{{Method: "POST", Path: "/send/*", Action: "write:email"}}})
	e := m.F.Engine
	tests := []struct {
		name   string
		r      engine.Request
		status int
		reason string
	}{
		{"no token", engine.Request{Method: "GET", Path: "/x"}, 401, engine.ReasonUnauthorized},
		{"garbage token", engine.Request{Token: "abc.def.ghi", Method: "GET", Path: "/x"}, 401, engine.ReasonUnauthorized},
		{"alg none", engine.Request{Token: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", Method: "GET", Path: "/x"}, 401, engine.ReasonUnauthorized},
		{"derived action", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"}, 200, policy.ReasonRuleAllow},
		{"route mapping", engine.Request{Token: m.MailT, Method: "POST", Path: "/send/now?to=a@example.com"}, 200, policy.ReasonRuleAllow},
		{"external email", engine.Request{Token: m.MailT, Method: "POST", Path: "/email?to=eve@evil.test"}, 403, policy.ReasonRuleDeny},
		{"unknown method", engine.Request{Token: m.MailT, Method: "BREW", Path: "/coffee"}, 403, engine.ReasonActionUnresolved},
		{"invalid UTF-8", engine.Request{Token: m.MailT, Method: "GET", Path: "/\xff"}, 400, engine.ReasonBadRequest},
		{"NUL in an action", engine.Request{Source: engine.SourceAPI, Token: m.MailT, Action: "read:x\x00y"}, 400, engine.ReasonBadRequest},
		{"DEL in a resource", engine.Request{Source: engine.SourceAPI, Token: m.MailT, Action: "read:contacts", Resource: "/a\x7f"}, 400, engine.ReasonBadRequest},
		{"control character in the method", engine.Request{Token: m.MailT, Method: "G\x01T", Path: "/x"}, 400, engine.ReasonBadRequest},
		{"context of the API over the limit", engine.Request{Source: engine.SourceAPI, Token: m.MailT, Action: "read:contacts",
			Context: map[string]any{"k": strings.Repeat("a", engine.MaxContextLen)}}, 400, engine.ReasonBadRequest},
		{"huge path", engine.Request{Token: m.MailT, Method: "GET", Path: "/" + strings.Repeat("a", engine.MaxPathLen)}, 400, engine.ReasonBadRequest},
		{"dot segment", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts/../admin"}, 400, engine.ReasonBadRequest},
		{"encoded dot segment", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts/%2E%2e/admin"}, 400, engine.ReasonBadRequest},
		{"empty segment", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts//x"}, 400, engine.ReasonBadRequest},
		{"encoded slash", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts%2Fx"}, 400, engine.ReasonBadRequest},
		{"backslash", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts\\x"}, 400, engine.ReasonBadRequest},
		{"dots inside a name are fine", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts/a..b/.x"}, 200, policy.ReasonRuleAllow},
		{"query keeps its slashes", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts?next=/a/../b"}, 200, policy.ReasonRuleAllow},
		{"malformed escape", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts/%zz"}, 400, engine.ReasonBadRequest},
		{"steering headers do not relabel a delete", engine.Request{Token: m.MailT, Method: "DELETE", Path: "/contacts/1",
			Headers: edge.MapHeaders{"x-meshguard-action": "read:contacts", "x-meshguard-resource": "/contacts", "x-meshguard-context": `{"to":"a@example.com"}`}}, 403, policy.ReasonNoMatchingRule},
		{"a route's action, whatever the caller asks", engine.Request{Token: m.MailT, Method: "POST", Path: "/send/now?to=a@example.com"}, 200, policy.ReasonRuleAllow},
		{"an explicit action outside the API is ignored", engine.Request{Token: m.MailT, Method: "DELETE", Path: "/contacts/1", Action: "read:contacts"}, 403, policy.ReasonNoMatchingRule},
		{"the query decides the context", engine.Request{Token: m.MailT, Method: "POST", Path: "/email?to=eve@evil.test"}, 403, policy.ReasonRuleDeny},
		{"no query: the deny rule still holds", engine.Request{Token: m.MailT, Method: "POST", Path: "/email"}, 403, policy.ReasonRuleDeny},
		{"a query parameter sent twice", engine.Request{Token: m.MailT, Method: "POST", Path: "/email?to=a@example.com&to=eve@evil.test"}, 400, engine.ReasonBadRequest},
		{"a ';' in the query a policy reads", engine.Request{Token: m.MailT, Method: "POST", Path: "/email?to=a@example.com;to=eve@evil.test"}, 400, engine.ReasonBadRequest},
		{"an encoded query value", engine.Request{Token: m.MailT, Method: "POST", Path: "/email?to=a%40example.com"}, 200, policy.ReasonRuleAllow},
		{"a malformed query escape", engine.Request{Token: m.MailT, Method: "POST", Path: "/email?to=a%4"}, 400, engine.ReasonBadRequest},
		{"a path parameter", engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts;/x"}, 400, engine.ReasonBadRequest},
		{"API action without verb", engine.Request{Source: engine.SourceAPI, Token: m.MailT, Action: "everything"}, 400, engine.ReasonBadRequest},
		{"ESC in an API action", engine.Request{Source: engine.SourceAPI, Token: m.MailT, Action: "read:x\x1b[2K"}, 400, engine.ReasonBadRequest},
		{"explicit api action", engine.Request{Source: engine.SourceAPI, Token: m.MailT, Action: "read:contacts"}, 200, policy.ReasonRuleAllow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, e, tc.r)
			if d.Status != tc.status || d.Reason != tc.reason || d.Allowed != (tc.status == 200) {
				t.Fatalf("got %d %s (%s), want %d %s", d.Status, d.Reason, d.Message, tc.status, tc.reason)
			}
			if len(d.TraceID) != 32 || !strings.HasPrefix(d.ID, "dec_") {
				t.Fatalf("ids: %q %q", d.TraceID, d.ID)
			}
			if !d.Allowed && len(d.DenyBody()) == 0 {
				t.Fatal("no deny body")
			}
		})
	}
}

// TestEncodedPathsDecideAsDecoded: a path that spells a resource with
// percent-encoded letters is decided as the resource it names, so a deny
// rule cannot be stepped around by encoding.
func TestEncodedPathsDecideAsDecoded(t *testing.T) {
	f := enginetest.New(t, `
name: readers
rules:
  - name: no-private
    effect: deny
    actions: ["read:*"]
    conditions: {resource: {startsWith: /docs/private/}}
  - {name: reads, effect: allow, actions: ["read:*"]}
`, enginetest.Options{Routes: []engine.Route{{Method: "POST", Path: "/api/admin/*", Action: "admin:write"}}})
	_, tok := f.Agent(t, "reader", 1, nil)
	for _, p := range []string{"/docs/private/x", "/docs/%70rivate/x", "/docs/privat%65/x", "/%64ocs/private/x"} {
		d := check(t, f.Engine, engine.Request{Token: tok, Method: "GET", Path: p})
		if d.Allowed || d.Rule != "no-private" || d.Resource != "/docs/private/x" || d.Action != "read:docs/private/x" {
			t.Errorf("%s: %+v", p, d)
		}
	}
	// Routes see the decoded path too.
	d := check(t, f.Engine, engine.Request{Token: tok, Method: "POST", Path: "/api/%61dmin/x"})
	if d.Action != "admin:write" {
		t.Fatalf("encoded route: %+v", d)
	}
	// Other escapes stay encoded (upper-cased).
	if d := check(t, f.Engine, engine.Request{Token: tok, Method: "GET", Path: "/docs/a%20b"}); d.Resource != "/docs/a%20b" || !d.Allowed {
		t.Fatalf("space: %+v", d)
	}
}

func TestHostsAreNormalised(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	for _, host := range []string{"emailer.mesh", "EMAILER.MESH", "emailer.mesh.", "emailer.mesh:8080", "Emailer.Mesh.:443"} {
		// Every spelling of the emailer's host reaches the hand-on check
		// and mints the emailer's delegation token.
		d := check(t, m.F.Engine, engine.Request{Token: m.OrchT, Method: "GET", Host: host, Path: "/contacts"})
		if !d.Allowed || d.TargetAgent != m.Mail.ID {
			t.Errorf("%s: %+v", host, d)
		}
	}
}

func TestRateLimitAndAuditMode(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m := newMesh(t, enginetest.Options{Now: clock})
	for i := range 5 {
		if d := check(t, m.F.Engine, engine.Request{Token: m.ResT, Method: "GET", Path: "/papers"}); !d.Allowed {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d := check(t, m.F.Engine, engine.Request{Token: m.ResT, Method: "GET", Path: "/papers"})
	if d.Allowed || d.Status != 429 || d.Reason != engine.ReasonRateLimited || d.RetryAfter <= 0 || d.Policy != "researchers" {
		t.Fatalf("6th request: %+v", d)
	}
	if !strings.Contains(string(d.DenyBody()), `"retry_after"`) {
		t.Fatalf("429 body: %s", d.DenyBody())
	}

	audit := newMesh(t, enginetest.Options{Mode: engine.ModeAudit})
	d = check(t, audit.F.Engine, engine.Request{Token: audit.MailT, Method: "DELETE", Path: "/everything"})
	if !d.Allowed || d.Effect != "deny" || d.Status != 403 || d.Mode != engine.ModeAudit {
		t.Fatalf("audit mode: %+v", d)
	}
}
