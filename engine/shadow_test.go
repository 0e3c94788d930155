package engine_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/telemetry"
	"github.com/meshguard/meshguard/trust"
)

// shadowPolicies: mailers may send and read, and need an approval to
// publish; writers may do anything but not delegate. The shadow policy
// strict, covering both, would deny mail outside example.com and
// publishing, allow archiving, limit reads to one a minute (a rule's and
// the policy's limit), and let writers delegate.
const shadowPolicies = `
name: mail
appliesTo: {tags: [mailer]}
delegation: {maxDepth: 2}
rules:
  - {name: send, effect: allow, actions: ["send:*", "read:*"]}
  - {name: ask, effect: approve, actions: ["publish:*"]}
---
name: writers
appliesTo: {tags: [writer]}
rules:
  - {name: all, effect: allow, actions: ["*"]}
---
name: strict
mode: shadow
appliesTo: {tags: [mailer, writer]}
defaultEffect: allow
delegation: {maxDepth: 2}
rateLimits: {requestsPerMinute: 1}
rules:
  - {name: no-outside, effect: deny, actions: ["send:*"], conditions: {context: {to: {not_matches: "*@example.com"}}}}
  - {name: archive, effect: allow, actions: ["archive:*"]}
  - {name: no-publish, effect: deny, actions: ["publish:*"]}
  - {name: reads, effect: allow, actions: ["read:*"], conditions: {rateLimit: {requestsPerMinute: 1}}}
`

// TestShadowPolicyNeverDecides: a shadow policy's differing answer is
// recorded (audit record, metric) and never changes the decision — not
// the effect, not a rate limit, not an approval, not a hand-off; an
// agreeing one leaves no trace.
func TestShadowPolicyNeverDecides(t *testing.T) {
	for _, mode := range []engine.Mode{engine.ModeEnforce, engine.ModeAudit} {
		t.Run(string(mode), func(t *testing.T) {
			metrics := telemetry.NewMetrics()
			f := enginetest.New(t, shadowPolicies, enginetest.Options{Mode: mode, Observer: metrics})
			_, mailer := f.Agent(t, "mailer", trust.Verified, []string{"mailer"}, "mailer.mesh")
			_, writer := f.Agent(t, "writer", trust.Verified, []string{"writer"})
			shadowOf := func(d, r, p, rule string) *audit.Shadow {
				return &audit.Shadow{Decision: d, Reason: r, Policy: p, Rule: rule}
			}
			for _, tc := range []struct {
				name   string
				req    engine.Request
				status int
				reason string
				shadow *audit.Shadow
			}{
				{"shadow deny over an enforced allow", engine.Request{Token: mailer, Action: "send:mail", Context: map[string]any{"to": "eve@evil.example"}},
					200, "rule_allow", shadowOf("deny", "rule_deny", "strict", "no-outside")},
				{"shadow allow over an enforced deny", engine.Request{Token: mailer, Action: "archive:x"},
					403, "no_matching_rule", shadowOf("allow", "rule_allow", "strict", "archive")},
				{"agreeing shadow", engine.Request{Token: mailer, Action: "send:mail", Context: map[string]any{"to": "bob@example.com"}},
					200, "rule_allow", nil},
				{"shadow deny over an approval: the approval is still asked for", engine.Request{Token: mailer, Action: "publish:x"},
					403, engine.ReasonApprovalRequired, shadowOf("deny", "rule_deny", "strict", "no-publish")},
				// The shadow policy's limits (one a minute) are not counted:
				// three reads in a row are allowed.
				{"read 1", engine.Request{Token: mailer, Action: "read:a"}, 200, "rule_allow", nil},
				{"read 2", engine.Request{Token: mailer, Action: "read:a"}, 200, "rule_allow", nil},
				{"read 3", engine.Request{Token: mailer, Action: "read:a"}, 200, "rule_allow", nil},
				// The shadow policy's delegation block does not let a
				// writer hand a task on.
				{"hand-off", engine.Request{Token: writer, Action: "read:a", Host: "mailer.mesh"}, 403, "delegation_not_permitted", nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tc.req.Source = engine.SourceAPI
					tc.req.Resource = "/x"
					d, err := f.Engine.Check(context.Background(), &tc.req)
					if err != nil {
						t.Fatal(err)
					}
					if d.Status != tc.status || d.Reason != tc.reason {
						t.Fatalf("decided %d %s (%s), want %d %s", d.Status, d.Reason, d.Message, tc.status, tc.reason)
					}
					if want := tc.status == 200 || mode == engine.ModeAudit; d.Allowed != want {
						t.Fatalf("allowed %v, want %v", d.Allowed, want)
					}
					if tc.reason == engine.ReasonApprovalRequired && mode == engine.ModeEnforce && d.ApprovalID == "" {
						t.Fatal("no approval was raised")
					}
					recs := records(t, f)
					rec := recs[len(recs)-1]
					if rec.DecisionID != d.ID {
						t.Fatalf("the last record is %s, not the decision's", rec.DecisionID)
					}
					switch {
					case tc.shadow == nil && rec.Shadow != nil:
						t.Fatalf("recorded a shadow answer %+v, want none", *rec.Shadow)
					case tc.shadow != nil && (rec.Shadow == nil || *rec.Shadow != *tc.shadow):
						t.Fatalf("recorded shadow answer %+v, want %+v", rec.Shadow, *tc.shadow)
					}
				})
			}
			srv := httptest.NewServer(metrics.Handler())
			t.Cleanup(srv.Close)
			res, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			_ = res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for line := range strings.Lines(string(body)) {
				if strings.HasPrefix(line, "meshguard_shadow_disagreements_total{") {
					got = append(got, strings.TrimSpace(line))
				}
			}
			want := []string{
				`meshguard_shadow_disagreements_total{enforced="allow",policy="strict",shadow="deny"} 1`,
				`meshguard_shadow_disagreements_total{enforced="approve",policy="strict",shadow="deny"} 1`,
				`meshguard_shadow_disagreements_total{enforced="deny",policy="strict",shadow="allow"} 1`,
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("/metrics shows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestShadowSpanAttributes: the evaluate span carries a differing shadow
// answer as meshguard.shadow.*, and nothing of an agreeing one.
func TestShadowSpanAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f := enginetest.New(t, shadowPolicies, enginetest.Options{})
	_, mailer := f.Agent(t, "mailer", trust.Verified, []string{"mailer"})
	e, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer,
		Agents: f.Agents, Policies: f.Policies, Limiter: f.Limiter, Approvals: f.Store, Tracer: tp.Tracer("test")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		to   string
		want map[string]string
	}{
		{"eve@evil.example", map[string]string{"meshguard.shadow.decision": "deny", "meshguard.shadow.reason": "rule_deny",
			"meshguard.shadow.policy": "strict", "meshguard.shadow.rule": "no-outside"}},
		{"bob@example.com", map[string]string{}},
	} {
		t.Run(tc.to, func(t *testing.T) {
			r := engine.Request{Source: engine.SourceAPI, Token: mailer, Action: "send:mail", Resource: "/x", Context: map[string]any{"to": tc.to}}
			if _, err := e.Check(context.Background(), &r); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range attrs(spanNamed(t, rec, engine.SpanEvaluate)) {
				if strings.HasPrefix(k, "meshguard.shadow.") {
					got[k] = v
				}
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("shadow attributes %v, want %v", got, tc.want)
			}
		})
	}
}
