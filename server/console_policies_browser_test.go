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
