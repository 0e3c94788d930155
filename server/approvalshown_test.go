package server

import (
	"context"
	"encoding/json"
	"html"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/config"
)

// TestServedApprovalShowsTheQuery: on a served MeshGuard, a proxied
// request held for approval, POST /outbox?to=…&token=…&password=…, is
// shown with its query and context wherever a person decides — the
// webhook notification, the signed link's page (escaped), the admin's GET
// /admin/approvals/{id} — the values of token and password as [redacted];
// the secrets reach none of them, and the agent's own view gets neither
// query nor context. Before, the approver saw POST /outbox alone.
func TestServedApprovalShowsTheQuery(t *testing.T) {
	const secret = "receiver-secret"
	hook := newHookReceiver(t, secret)
	r := start(t, func(c *config.Config) {
		c.AdminToken = authTestAdminToken
		c.Alerts.WebhookURL, c.Alerts.WebhookSecret = hook.srv.URL, secret
		c.Alerts.ApprovalLinkBase = "https://meshguard.example.com"
		writePolicy(t, c, "outbox.yaml", "name: outbox\nappliesTo: {tags: [mailer]}\nrules:\n  - name: outsiders\n    effect: approve\n    actions: [\"*\"]\n    conditions: {context: {query.to: {not_matches: \"*@ours.example\"}}}\n")
	})
	tok := r.agent(t, "mailer", "mailer")
	const target = "/outbox?to=eve@evil.example&token=s3cret-token&password=hunter2&note=<b>hi</b>"
	resp, err := authv3.NewAuthorizationClient(r.grpc).Check(context.Background(), checkRequest(tok, "POST", target))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
		t.Fatalf("the request: %v, %v", resp, err)
	}
	const wantQuery = "to=eve@evil.example&token=[redacted]&password=[redacted]&note=<b>hi</b>"
	secrets := []string{"s3cret-token", "hunter2"}

	var body []byte
	eventually(t, "the approval announced", func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		if len(hook.bodies) > 0 {
			body = hook.bodies[0]
		}
		return body != nil
	})
	var got alert.Alert
	if err := json.Unmarshal(body, &got); err != nil || got.Approval == nil {
		t.Fatalf("payload %s (%v)", body, err)
	}
	a := got.Approval
	if a.Query != wantQuery || compact(t, a.Context) != `{"query.to":"eve@evil.example"}` {
		t.Fatalf("the notification shows query %q context %s; want %q and query.to", a.Query, a.Context, wantQuery)
	}

	page := r.call(t, context.Background(), "GET", strings.Replace(a.Links.Approve, "https://meshguard.example.com", "", 1), nil, "")
	if page.code != 200 || !strings.Contains(string(page.body), html.EscapeString(wantQuery)) || strings.Contains(string(page.body), "<b>hi") {
		t.Fatalf("the link's page: %d, want the query escaped:\n%s", page.code, page.body)
	}

	admin := r.call(t, context.Background(), "GET", "/admin/approvals/"+a.ID, map[string]string{api.HeaderAdminToken: authTestAdminToken}, "")
	var full api.Approval
	if err := json.Unmarshal(admin.body, &full); err != nil || admin.code != 200 || full.Query != wantQuery || compact(t, full.Context) != `{"query.to":"eve@evil.example"}` {
		t.Fatalf("the admin's view: %d %s (%v)", admin.code, admin.body, err)
	}

	mine := r.call(t, context.Background(), "GET", "/v1/approvals/"+a.ID, bearerOf(tok), "")
	if mine.code != 200 {
		t.Fatalf("the agent's view: %d %s", mine.code, mine.body)
	}
	for _, k := range []string{"query", "context", "params", "paramsDigest", "omitted"} {
		if _, ok := mine.json(t)[k]; ok {
			t.Errorf("the agent's view holds %s: %s", k, mine.body)
		}
	}
	for what, b := range map[string][]byte{"notification": body, "page": page.body, "admin view": admin.body} {
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("the %s holds the secret %q", what, s)
			}
		}
	}
}
