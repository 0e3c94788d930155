package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshguard/meshguard/api"
)

// checkStatus is the HTTP status POST /v1/check answers token.
func checkStatus(t *testing.T, base, token string) int {
	t.Helper()
	body, _ := json.Marshal(api.CheckRequest{Action: "read:docs"})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/check", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestConsoleAgentsInBrowser: in a real Chromium, the admin creates an
// agent on the agents page and sees its token once (it works at
// /v1/check; the list and the agent's page do not hold it), then revokes
// the agent, after which the token is refused.
func TestConsoleAgentsInBrowser(t *testing.T) {
	r := start(t, nil)
	ctx := browser(t)
	base := "http://" + r.addrs.HTTP

	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/agents"), // no session: sent to sign in
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), r.adminToken(t)),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("rows"), chromedp.NodeReady),
		chromedp.Navigate(base+"/ui/agents"),
		chromedp.WaitVisible(chromedp.ID("a-name")),
		chromedp.SendKeys(chromedp.ID("a-name"), "browser-made"),
		chromedp.SetValue(chromedp.ID("a-tier"), "verified"),
		chromedp.SendKeys(chromedp.ID("a-tags"), "reader"),
		chromedp.Click(chromedp.ID("a-create")),
		chromedp.WaitVisible(chromedp.ID("token-value")),
	); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(inBrowser(t, ctx, chromedp.Value(chromedp.ID("token-value"))))
	if tok == "" {
		t.Fatal("no token shown after creating the agent")
	}
	if s := checkStatus(t, base, tok); s != http.StatusOK && s != http.StatusForbidden {
		t.Fatalf("the shown token at /v1/check: %d, want a decision (200 or 403)", s)
	}

	// The list has the agent and not the token; its page neither.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/agents"),
		chromedp.WaitVisible(chromedp.CSS(`tr.active a`)),
	); err != nil {
		t.Fatal(err)
	}
	list := inBrowser(t, ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if !strings.Contains(list, "browser-made") || strings.Contains(list, tok) {
		t.Fatalf("the agents list: has the agent %t, has the token %t", strings.Contains(list, "browser-made"), strings.Contains(list, tok))
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr.active a`)),
		chromedp.WaitVisible(chromedp.ID("a-revoke")),
	); err != nil {
		t.Fatal(err)
	}
	if page := inBrowser(t, ctx, chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(page, tok) {
		t.Fatal("the agent's page shows the token again")
	}

	// Revoke it: the page says revoked, and the token stops working.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("a-revoke")),
		chromedp.WaitVisible(chromedp.CSS(`#agent-status.deny`)),
	); err != nil {
		t.Fatal(err)
	}
	if s := inBrowser(t, ctx, chromedp.Text(chromedp.ID("agent-status"))); s != "revoked" {
		t.Fatalf("status after revoking: %q", s)
	}
	deadline := time.Now().Add(20 * time.Second)
	for checkStatus(t, base, tok) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("the revoked agent's token is still accepted after 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
