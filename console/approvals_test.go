package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// payersPolicy holds every payment for a person's approval.
const payersPolicy = `---
name: payers
appliesTo: {tags: [payer]}
rules:
  - {name: payments, effect: approve, actions: ["call:pay/*"]}
`

// payer is an agent whose payments wait for approval.
type payer struct {
	fx    *fixture
	token string
	asked map[string]bool // approvals ask has returned
}

// newPayer adds the payers policy to the fixture's set and a payer agent.
func newPayer(t *testing.T, fx *fixture) *payer {
	t.Helper()
	if err := os.WriteFile(filepath.Join(fx.f.Dir, "policies.yaml"), []byte(testPolicies+payersPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.f.Policies.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, tok := fx.f.Agent(t, "payer-1", trust.Verified, []string{"payer"})
	return &payer{fx: fx, token: tok, asked: map[string]bool{}}
}

// pay asks to pay: the engine's decision (approve while no person has
// approved, then allow once one has).
func (p *payer) pay(t *testing.T, to string) engine.Decision {
	t.Helper()
	req := &engine.Request{Source: engine.SourceAPI, Token: p.token, Action: "call:pay/transfer", Resource: "/pay",
		Context: map[string]any{"arguments": map[string]any{"to": to, "amount": 12.50}}}
	req.SetTraceparent("00-" + traceID + "-00f067aa0ba902b7-01")
	d, err := p.fx.f.Engine.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ask pays and returns the pending approval raised.
func (p *payer) ask(t *testing.T, to string) approval.Approval {
	t.Helper()
	if d := p.pay(t, to); d.Reason != engine.ReasonApprovalRequired {
		t.Fatalf("paying %s: %s (%s), want approval_required", to, d.Effect, d.Reason)
	}
	// The one pending approval not returned before: two raised in the same
	// millisecond sort in either order, so "the newest" may be the older.
	got, err := p.fx.f.Store.ListApprovals(context.Background(), approval.Filter{Status: approval.Pending})
	if err != nil {
		t.Fatal(err)
	}
	var fresh []approval.Approval
	for _, a := range got {
		if !p.asked[a.ID] {
			fresh = append(fresh, a)
		}
	}
	if len(fresh) != 1 || fresh[0].Resource != "/pay" {
		t.Fatalf("the approval raised: %v of %v", fresh, got)
	}
	p.asked[fresh[0].ID] = true
	return fresh[0]
}

// csrfOf is the CSRF token a signed-in page carries.
func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

// TestApprovalsQueue: pending approvals come first, newest first within
// each kind; the status and agent filters apply; a filter the page cannot
// read is refused with a page that names it.
func TestApprovalsQueue(t *testing.T) {
	fx := newFixture(t, nil)
	p := newPayer(t, fx)
	older := p.ask(t, "alice")
	newer := p.ask(t, "bob")
	// The newer one is denied: the older pending one still comes first.
	if _, err := fx.f.Store.DecideApproval(context.Background(), approval.Decision{ID: newer.ID, By: "carol"}); err != nil {
		t.Fatal(err)
	}
	c := fx.client(t)
	fx.signIn(t, c)
	ids := regexp.MustCompile(`<tr data-id="(apr_[0-9a-f]+)"`)
	for _, tc := range []struct {
		name, query string
		status      int
		want        []string
		says        string
	}{
		{"pending first", "", http.StatusOK, []string{older.ID, newer.ID}, ""},
		{"pending only", "?status=pending", http.StatusOK, []string{older.ID}, ""},
		{"denied only", "?status=denied", http.StatusOK, []string{newer.ID}, ""},
		{"by agent name", "?agent=payer-1", http.StatusOK, []string{older.ID, newer.ID}, ""},
		{"by agent id", "?agent=" + older.AgentID, http.StatusOK, []string{older.ID, newer.ID}, ""},
		{"another agent", "?agent=reader-1", http.StatusOK, nil, "No approvals match these filters."},
		{"an unknown status", "?status=maybe", http.StatusBadRequest, nil, "status: expected pending, approved, denied, expired or used"},
		{"an unknown parameter", "?limit=5", http.StatusBadRequest, nil, `unknown query parameter &#34;limit&#34;`},
		{"a parameter twice", "?status=pending&status=denied", http.StatusBadRequest, nil, `&#34;status&#34; is given more than once`},
		{"a control character", "?agent=a%0Ab", http.StatusBadRequest, nil, "agent: too long, not UTF-8, or holds a control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := fx.get(t, c, "/ui/approvals"+tc.query)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s, want %d", resp.Status, tc.status)
			}
			var got []string
			for _, m := range ids.FindAllStringSubmatch(body, -1) {
				got = append(got, m[1])
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("rows %v, want %v", got, tc.want)
			}
			if !strings.Contains(body, tc.says) {
				t.Fatalf("the page does not say %q:\n%s", tc.says, body)
			}
		})
	}
}

// TestApprovalPage: an approval's page shows what approvalapi.Full gives
// the admin API (its arguments as recorded, context, policy, chain, trace).
func TestApprovalPage(t *testing.T) {
	fx := newFixture(t, nil)
	p := newPayer(t, fx)
	a := p.ask(t, "mallory <script>")
	c := fx.client(t)
	fx.signIn(t, c)
	resp, body := fx.get(t, c, "/ui/approvals/"+a.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s", resp.Status)
	}
	full := approvalapi.Full(a)
	if len(full.Context) == 0 || len(full.Chain) == 0 || full.Policy == "" || full.TraceID != traceID {
		t.Fatalf("the approval holds too little to test its page: %+v", full)
	}
	for _, want := range append([]string{full.ID, full.Status, full.Action, full.Resource, full.AgentID, full.AgentName,
		full.Policy, full.Rule, full.TraceID, `action="/ui/approvals/` + full.ID + `/decide"`}, full.Chain...) {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The context as stored (JSON escapes <), and escaped again for HTML:
	// what the agent sent is text here.
	m := regexp.MustCompile(`(?s)<pre id="approval-context">(.*?)</pre>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the page shows no context")
	}
	if shown := html.UnescapeString(m[1]); !strings.Contains(shown, `"to": "mallory \u003cscript\u003e"`) || strings.Contains(m[1], "<script") {
		t.Fatalf("the context shown: %q", m[1])
	}
	for _, tc := range []struct{ name, path string }{
		{"no such approval", "/ui/approvals/apr_0123456789abcdef0123456789abcdef01234567"},
		{"not an approval id", "/ui/approvals/nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp, _ := fx.get(t, c, tc.path); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("%s, want 404", resp.Status)
			}
		})
	}
}

// TestDecideApproval: the console's form decides through approvalapi as
// source console, by console:admin, with the reason; the audit trail
// records it and the agent's retry is allowed. A form the console cannot
// take changes nothing.
func TestDecideApproval(t *testing.T) {
	fx := newFixture(t, nil)
	p := newPayer(t, fx)
	a := p.ask(t, "alice")
	c := fx.client(t)
	fx.signIn(t, c)
	_, page := fx.get(t, c, "/ui/approvals/"+a.ID)
	csrf := csrfOf(t, page)
	path := "/ui/approvals/" + a.ID + "/decide"
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		says   string
	}{
		{"no decision", url.Values{"csrf": {csrf}}, http.StatusBadRequest, "Choose approve or deny."},
		{"an unknown decision", url.Values{"csrf": {csrf}, "decision": {"maybe"}}, http.StatusBadRequest, "Choose approve or deny."},
		{"a control character in the reason", url.Values{"csrf": {csrf}, "decision": {"approve"}, "reason": {"ok\r\nforged"}},
			http.StatusBadRequest, "must be UTF-8 text without control characters"},
		{"a reason too long", url.Values{"csrf": {csrf}, "decision": {"approve"}, "reason": {strings.Repeat("x", 1025)}},
			http.StatusBadRequest, "longer than 1024 bytes"},
		{"no CSRF token", url.Values{"decision": {"approve"}}, http.StatusForbidden, "CSRF token is missing or wrong"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := fx.post(t, c, path, tc.form, fx.srv.URL)
			body := readAll(t, resp)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("%s, want %d saying %q:\n%s", resp.Status, tc.status, tc.says, body)
			}
			if got, err := fx.f.Store.GetApproval(context.Background(), a.ID); err != nil || got.Status != approval.Pending {
				t.Fatalf("after a refused form: %v, %v", got.Status, err)
			}
		})
	}

	resp := fx.post(t, c, path, url.Values{"csrf": {csrf}, "decision": {"approve"}, "reason": {"invoice checked"}}, fx.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/approvals/"+a.ID {
		t.Fatalf("approving: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	got, err := fx.f.Store.GetApproval(context.Background(), a.ID)
	if err != nil || got.Status != approval.Approved || got.DecidedBy != "console:admin" || got.DecisionReason != "invoice checked" {
		t.Fatalf("approved: %+v, %v", got, err)
	}
	// The person's answer is a record of its own, source console; the
	// decision page says it is no request to decide again.
	var rec audit.Record
	err = fx.f.Store.ScanAuditFiltered(context.Background(), store.AuditFilter{Action: approvalapi.ActionApprove},
		func(r audit.Record, _ string) error { rec = r; return nil })
	if err != nil || rec.Source != "console" || rec.Resource != a.ID || rec.Context["by"] != "console:admin" || rec.Context["reason"] != "invoice checked" {
		t.Fatalf("the audit record: %+v, %v", rec, err)
	}
	if _, body := fx.get(t, c, "/ui/decisions/"+rec.ID); !strings.Contains(body, "a console record is no request the policies decided") {
		t.Fatalf("the decision page of the approval's record:\n%s", body)
	}
	_, body := fx.get(t, c, "/ui/approvals/"+a.ID)
	if !strings.Contains(body, `id="approval-status">approved<`) || !strings.Contains(body, "console:admin") || strings.Contains(body, `id="approve"`) {
		t.Fatalf("the page after approving:\n%s", body)
	}
	if d := p.pay(t, "alice"); d.Effect != "allow" {
		t.Fatalf("the retry: %s (%s), want allow", d.Effect, d.Reason)
	}

	// Decided (and used) already: refused, and it stays as it was.
	resp = fx.post(t, c, path, url.Values{"csrf": {csrf}, "decision": {"deny"}}, fx.srv.URL)
	if body := readAll(t, resp); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "already decided") {
		t.Fatalf("deciding again: %s\n%s", resp.Status, body)
	}
	if got, err := fx.f.Store.GetApproval(context.Background(), a.ID); err != nil || got.Status != approval.Used || got.DecidedBy != "console:admin" {
		t.Fatalf("after deciding again: %v, %v", got.Status, err)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
