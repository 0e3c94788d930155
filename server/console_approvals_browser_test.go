package server

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/meshguard/meshguard/engine"
)

// TestConsoleApprovalInBrowser: an agent's send waits for a person; in
// the console the approval is in the queue, its page shows the request,
// and the Approve button decides it; the agent's retry is then allowed.
func TestConsoleApprovalInBrowser(t *testing.T) {
	r := start(t, withAsk(t))
	ctx := browser(t)
	base := "http://" + r.addrs.HTTP
	asker := r.agent(t, "asker-1", "asker")

	const traceparent = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	d := v1Check(t, base, asker, "send:mail", traceparent)
	if d.Decision != "deny" || d.Reason != engine.ReasonApprovalRequired || d.ApprovalID == "" {
		t.Fatalf("the check: %+v, want one waiting for approval", d)
	}
	row := `tr[data-id="` + d.ApprovalID + `"]`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/approvals"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), r.adminToken(t)),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("rows"), chromedp.NodeReady), // the decisions page
		chromedp.Navigate(base+"/ui/approvals"),
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.Click(chromedp.CSS(row+` a`)),
		chromedp.WaitVisible(chromedp.ID("approve")),
	); err != nil {
		t.Fatal(err)
	}
	shown := inBrowser(t, ctx, chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"pending", "send:mail", "asker-1", "every-send"} {
		if !strings.Contains(shown, want) {
			t.Fatalf("the approval's page lacks %q: %q", want, shown)
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("d-reason"), "expected mail"),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("approval-by")),
	); err != nil {
		t.Fatal(err)
	}
	status := inBrowser(t, ctx, chromedp.Text(chromedp.ID("approval-status")))
	by := inBrowser(t, ctx, chromedp.Text(chromedp.ID("approval-by")))
	if status != "approved" || by != "console:admin" {
		t.Fatalf("after approving: %q by %q", status, by)
	}
	if d := v1Check(t, base, asker, "send:mail", traceparent); d.Decision != "allow" {
		t.Fatalf("the retry: %+v, want allowed", d)
	}
}
