package engine_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/trust"
)

const shownPolicy = `
name: outbox
appliesTo: {tags: [mailer]}
rules:
  - name: ask
    effect: approve
    actions: ["*"]
    conditions:
      context: { query.to: { not_matches: "*@ours.example" }, query.token: { not_matches: "none" } }
`

// relayPolicy reads no query parameter, so MeshGuard leaves the query's
// spelling to the upstream (docs/policies.md) and binds it raw.
const relayPolicy = `
name: relay
appliesTo: {tags: [relay]}
rules:
  - {name: ask, effect: approve, actions: ["*"]}
`

// raisedApproval is the stored approval a decision raised.
func raisedApproval(t *testing.T, f *enginetest.Fixture, d engine.Decision) approval.Approval {
	t.Helper()
	wantApproval(t, d, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
	a, err := f.Store.GetApproval(t.Context(), d.ApprovalID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestApprovalShowsWhatItBinds: an approval carries, for the person who
// decides it, the query string and the context it is bound to, with the
// values of redacted names (token, password: AUDIT_REDACT's defaults)
// replaced by [redacted] — in the query however the name is spelled, and
// in the context by key. Before, an approver saw POST /outbox/1 without
// ?to=eve@evil.example.
func TestApprovalShowsWhatItBinds(t *testing.T) {
	reads := enginetest.New(t, shownPolicy, enginetest.Options{ApprovalPendingTTL: 30 * time.Minute})
	_, mailer := reads.Agent(t, "mailer", trust.Verified, []string{"mailer"})
	relays := enginetest.New(t, relayPolicy, enginetest.Options{ApprovalPendingTTL: 30 * time.Minute})
	_, relay := relays.Agent(t, "relay", trust.Verified, []string{"relay"})
	tests := []struct {
		name, token, target, wantQuery string
		readsQuery                     bool // the policy reads query.to and query.token: they are in the context
	}{
		{"read by the policy", mailer, "/outbox/1?to=eve@evil.example&token=s3cret", "to=eve@evil.example&token=[redacted]", true},
		// The upstream reads these too: the binding holds the raw query.
		{"spellings", relay, "/outbox/2?to=eve@evil.example&TOKEN=s3cret&pass%77ord=hunter2&token[]=s3cret&api.key=k1;access-token=s3cret",
			"to=eve@evil.example&TOKEN=[redacted]&pass%77ord=[redacted]&token[]=[redacted]&api.key=[redacted];access-token=[redacted]", false},
		{"undecodable name", relay, "/outbox/3?to=eve@evil.example&token=s3cret&%zz=s3cret", "to=eve@evil.example&token=[redacted]&%zz=[redacted]", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := relays
			if tc.readsQuery {
				f = reads
			}
			a := raisedApproval(t, f, check(t, f.Engine, engine.Request{Source: engine.SourceGateway, Token: tc.token, Method: "POST", Path: tc.target}))
			if a.Query != tc.wantQuery {
				t.Errorf("query shown %q, want %q", a.Query, tc.wantQuery)
			}
			var ctx map[string]any
			if tc.readsQuery {
				if err := json.Unmarshal(a.Context, &ctx); err != nil {
					t.Fatalf("context %s: %v", a.Context, err)
				}
			}
			if tc.readsQuery && (ctx["query.to"] != "eve@evil.example" || ctx["query.token"] != audit.Redacted) {
				t.Errorf("context shown %s, want query.to and query.token [redacted]", a.Context)
			}
			for _, field := range []string{a.Query, string(a.Context)} {
				if strings.Contains(field, "s3cret") || strings.Contains(field, "hunter2") || strings.Contains(field, "k1") {
					t.Errorf("a secret is shown: %s", field)
				}
			}
		})
	}
}

// TestApprovalShowsTheA2AMessage: an A2A request's approval shows its
// params (the message) as tool-call arguments are shown — only under
// AUDIT_ARGUMENTS, redacted — and their digest always, so an approver
// without AUDIT_ARGUMENTS knows there is a message they cannot read.
func TestApprovalShowsTheA2AMessage(t *testing.T) {
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","messageId":"m-1",` +
		`"parts":[{"kind":"data","data":{"amount":10,"to":"ann","password":"hunter2"}}]}}}`)
	tests := []struct {
		name       string
		record     bool
		wantParams string
	}{
		{"AUDIT_ARGUMENTS", true, `{"message":{"messageId":"m-1","parts":[{"data":{"amount":10,"password":"[redacted]","to":"ann"},"kind":"data"}],"role":"user"}}`},
		{"without AUDIT_ARGUMENTS", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := enginetest.New(t, `
name: payers
appliesTo: {tags: [payer]}
rules:
  - {name: ask, effect: approve, actions: ["send:*"]}
`, enginetest.Options{ApprovalPendingTTL: 30 * time.Minute, ApprovalArguments: audit.ArgumentsConfig{Record: tc.record},
				Routes: []engine.Route{{Host: "bank.mesh", Path: "*", Protocol: agentproto.A2A, Service: "bank"}}})
			_, tok := f.Agent(t, "payer", trust.Verified, []string{"payer"})
			a := raisedApproval(t, f, check(t, f.Engine, engine.Request{Source: engine.SourceGateway, Token: tok, Method: "POST", Host: "bank.mesh", Path: "/", Body: body}))
			if string(a.Params) != tc.wantParams {
				t.Errorf("params shown %s, want %s", a.Params, tc.wantParams)
			}
			want, err := audit.ArgumentsDigest([]byte(`{"message":{"role":"user","messageId":"m-1","parts":[{"kind":"data","data":{"amount":10,"to":"ann","password":"hunter2"}}]}}`))
			if err != nil {
				t.Fatal(err)
			}
			if a.ParamsDigest != want {
				t.Errorf("params digest %q, want %q", a.ParamsDigest, want)
			}
			if strings.Contains(string(a.Params)+string(a.Context), "hunter2") {
				t.Error("the password is shown")
			}
		})
	}
}

// TestApprovalShowsNoOversizedQuery: a query too large to show (here
// grown past the bound by its redactions) is not shown, cut or whole, and
// the approval says so; the binding still holds it whole.
func TestApprovalShowsNoOversizedQuery(t *testing.T) {
	f := enginetest.New(t, relayPolicy, enginetest.Options{ApprovalPendingTTL: 30 * time.Minute})
	_, tok := f.Agent(t, "relay", trust.Verified, []string{"relay"})
	target := "/outbox/big?to=eve@evil.example" + strings.Repeat("&token=x", 1000)
	a := raisedApproval(t, f, check(t, f.Engine, engine.Request{Source: engine.SourceGateway, Token: tok, Method: "POST", Path: target}))
	if a.Query != "" || len(a.Omitted) != 1 || a.Omitted[0] != "query" {
		t.Fatalf("query %d bytes shown, omitted %v; want none shown, [query]", len(a.Query), a.Omitted)
	}
}

// BenchmarkCheckApprovalPending is an agent retrying a request held for
// approval (a pending one found: no new approval raised): the approve
// path, with its binding, what it shows a person (query, context,
// redacted) and the store's write transaction.
func BenchmarkCheckApprovalPending(b *testing.B) {
	f := enginetest.New(b, shownPolicy, enginetest.Options{ApprovalPendingTTL: 30 * time.Minute})
	_, tok := f.Agent(b, "mailer", trust.Verified, []string{"mailer"})
	req := engine.Request{Source: engine.SourceGateway, Token: tok, Method: "POST", Path: "/outbox/1?to=eve@evil.example&token=s3cret&subject=hi"}
	r := req
	if d, err := f.Engine.Check(b.Context(), &r); err != nil || d.ApprovalOutcome != approval.OutcomeRequested {
		b.Fatal(d, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := req
		if d, err := f.Engine.Check(b.Context(), &r); err != nil || d.ApprovalOutcome != approval.OutcomePending {
			b.Fatal(d, err)
		}
	}
}
