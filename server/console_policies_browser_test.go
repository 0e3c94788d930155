package server

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestConsolePlaygroundInBrowser: signed in, the Policies page lists the
// set in force; its playground decides a request by the live set, then by
// a pasted draft, each with the explanation, and the draft changes
// nothing in force.
func TestConsolePlaygroundInBrowser(t *testing.T) {
	r := start(t, nil)
	ctx := browser(t)
	base := "http://" + r.addrs.HTTP
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/policies"), // no session: sent to sign in
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), r.adminToken(t)),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("rows")), // signed in: the decisions page
		chromedp.Click(chromedp.CSS(`nav a[href="/ui/policies"]`)),
		chromedp.WaitVisible(chromedp.ID("policies")),
	); err != nil {
		t.Fatal(err)
	}
	if list := inBrowser(t, ctx, chromedp.Text(chromedp.ID("policies"))); !strings.Contains(list, "readers") || !strings.Contains(list, "tags reader") {
		t.Fatalf("the policies: %q", list)
	}

	// The live set: a reader reads.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("agent"), "play-1"),
		chromedp.SendKeys(chromedp.ID("tags"), "reader"),
		chromedp.SendKeys(chromedp.ID("action"), "read:docs"),
		chromedp.Click(chromedp.ID("decide")),
		chromedp.WaitVisible(chromedp.ID("play-effect")),
	); err != nil {
		t.Fatal(err)
	}
	if got := inBrowser(t, ctx, chromedp.Text(chromedp.ID("play-result"))); !strings.Contains(got, "allow rule_allow by readers / reads") ||
		!strings.Contains(got, "readers: covers the agent") {
		t.Fatalf("the live decision: %q", got)
	}

	// A draft that denies the same request; the form kept what was typed.
	draft := "name: lockdown\nrules:\n  - {name: no-docs, effect: deny, actions: [\"read:docs\"]}\n"
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("source-draft")),
		chromedp.SetValue(chromedp.ID("draft"), draft),
		chromedp.Click(chromedp.ID("decide")),
		chromedp.WaitVisible(chromedp.CSS(`#play-effect.deny`)),
	); err != nil {
		t.Fatal(err)
	}
	if got := inBrowser(t, ctx, chromedp.Text(chromedp.ID("play-result"))); !strings.Contains(got, "deny rule_deny by lockdown / no-docs") ||
		!strings.Contains(got, "no-docs: ") {
		t.Fatalf("the draft's decision: %q", got)
	}
	inForce, err := r.admin.ListPolicies(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rev := inBrowser(t, ctx, chromedp.Text(chromedp.ID("revision"))); rev != inForce.Revision || len(inForce.Policies) != 1 {
		t.Fatalf("revision shown %q; in force %q with %d policies: the draft changed the set", rev, inForce.Revision, len(inForce.Policies))
	}
}

// TestConsoleOverviewInBrowser: a decision made by POST /v1/check is
// drawn on the overview: its minute's bar, its denial reason and its
// agent, as SVG the browser lays out.
func TestConsoleOverviewInBrowser(t *testing.T) {
	r := start(t, nil)
	ctx := browser(t)
	base := "http://" + r.addrs.HTTP
	agentToken := r.agent(t, "reader-1", "reader")
	d := v1Check(t, base, agentToken, "write:docs", "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if d.Decision != "deny" {
		t.Fatalf("the check: %+v, want a denial", d)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/login"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), r.adminToken(t)),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("rows")),
		chromedp.Click(chromedp.CSS(`nav a[href="/ui/overview"]`)),
		chromedp.WaitVisible(chromedp.ID("per-minute")),
	); err != nil {
		t.Fatal(err)
	}
	// The denied part of the one minute with a record is drawn, full
	// height (it is the busiest minute).
	h := inBrowser(t, ctx, chromedp.Evaluate[float64](`document.querySelector("#per-minute .minute rect.deny").getBBox().height`))
	if h != 160 {
		t.Fatalf("the denied bar is %v px high, want 160", h)
	}
	// An SVG element has no innerText: read its text content.
	if got := inBrowser(t, ctx, chromedp.Evaluate[string](`document.getElementById("reasons").textContent`)); !strings.Contains(got, d.Reason) {
		t.Fatalf("the denial reasons: %q", got)
	}
	if got := inBrowser(t, ctx, chromedp.Evaluate[string](`document.getElementById("agents").textContent`)); !strings.Contains(got, "reader-1") {
		t.Fatalf("the agents: %q", got)
	}
}
