package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/console"
	"github.com/meshguard/meshguard/internal/testenv"
)

// Chromium for the browser tests: Debian's package (scripts/chromium.sh),
// or the binary MESHGUARD_CHROMIUM_BIN names. Missing, the tests skip
// unless MESHGUARD_REQUIRE_CHROMIUM=1 (make test).
const (
	envChromiumBin     = "MESHGUARD_CHROMIUM_BIN"
	envRequireChromium = "MESHGUARD_REQUIRE_CHROMIUM"
)

// browser starts a headless Chromium with a fresh profile and returns a
// tab's context, bounded so a hung browser fails the test rather than
// the whole run.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv(envChromiumBin)
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, envRequireChromium, "no Chromium at "+bin+"; run scripts/chromium.sh (as root) or set "+envChromiumBin)
	}
	// This machine's network is closed: without these flags Chromium
	// waits on the network at start.
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 900))
	ctx, cancelTab := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// v1Check decides an action for an agent through POST /v1/check.
func v1Check(t *testing.T, base, token, action, traceparent string) api.Decision {
	t.Helper()
	body, _ := json.Marshal(api.CheckRequest{Action: action})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/check", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d api.Decision
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestConsoleInBrowser: a real served MeshGuard, a real Chromium. An
// agent token does not sign in; the admin token does, and the cookie is
// HttpOnly, SameSite=Strict, scoped to /ui/; a decision made by POST
// /v1/check arrives live on the decisions page; its page shows the
// explanation, and its chain the tree; the CSP blocks an injected inline
// script.
func TestConsoleInBrowser(t *testing.T) {
	r := start(t, nil)
	ctx := browser(t)
	base := "http://" + r.addrs.HTTP
	agentToken := r.agent(t, "reader-1", "reader")

	// An agent token is refused, as a wrong token is.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/decisions"), // no session: sent to sign in
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), agentToken),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	); err != nil {
		t.Fatal(err)
	}
	msg := inBrowser(t, ctx, chromedp.Text(chromedp.ID("login-error")))
	if loc := inBrowser(t, ctx, chromedp.Location()); !strings.Contains(msg, "That token does not sign in") || !strings.HasSuffix(loc, "/ui/login") {
		t.Fatalf("an agent token: %q at %s, want refused", msg, loc)
	}

	// The admin token signs in; the decisions page goes live.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), r.adminToken(t)),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(`#rows[data-live="true"]`), chromedp.NodeReady),
	); err != nil {
		t.Fatal(err)
	}
	cookies := inBrowser(t, ctx, func(ctx context.Context, _ *chromedp.Target) ([]*network.Cookie, error) {
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
		return res.Cookies, err
	})
	if len(cookies) != 1 || cookies[0].Name != console.CookieName || !cookies[0].HTTPOnly ||
		cookies[0].SameSite != network.CookieSameSiteStrict || cookies[0].Path != "/ui/" || strings.Contains(cookies[0].Value, r.adminToken(t)) {
		t.Fatalf("cookies %+v: want one HttpOnly, SameSite=Strict session cookie on /ui/", cookies)
	}

	// A denied decision arrives live, with no reload.
	const trace = "0af7651916cd43dd8448eb211c80319c"
	d := v1Check(t, base, agentToken, "write:docs", "00-"+trace+"-b7ad6b7169203331-01")
	if d.Decision != "deny" {
		t.Fatalf("the check: %+v, want a denial", d)
	}
	id := "aud_" + strings.TrimPrefix(d.DecisionID, "dec_")
	row := `tr[data-id="` + id + `"]`
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.Click(chromedp.CSS(row+` a`)),
		chromedp.WaitVisible(chromedp.ID("chain-link")),
	); err != nil {
		t.Fatal(err)
	}
	explanation := inBrowser(t, ctx, chromedp.Text(chromedp.CSS("main")))
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("chain-link")),
		chromedp.WaitVisible(chromedp.CSS(`.tree .decision.deny`)),
	); err != nil {
		t.Fatal(err)
	}
	tree := inBrowser(t, ctx, chromedp.Text(chromedp.CSS(".tree")))
	if !strings.Contains(explanation, "Decided again by the policies in force") || !strings.Contains(explanation, "readers") {
		t.Fatalf("the decision page: %q", explanation)
	}
	if !strings.Contains(tree, "reader-1") || !strings.Contains(tree, "denied: "+d.Reason) {
		t.Fatalf("the chain: %q", tree)
	}

	// The CSP holds in the browser: an inline script put in the page does not run.
	inBrowser(t, ctx, chromedp.Evaluate[bool](`(function(){var s=document.createElement("script");s.textContent="window.injected=true";document.body.appendChild(s);return true})()`))
	if inBrowser(t, ctx, chromedp.Evaluate[bool](`window.injected === true`)) {
		t.Fatal("an inline script ran: the Content-Security-Policy is not enforced")
	}
}

// inBrowser runs one browser action that returns a value.
func inBrowser[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
