// Command consoleshots regenerates the console's screenshots in
// docs/console (make console-screenshots): it serves MeshGuard on
// loopback ports with the example policies, makes a few decisions, signs
// in with headless Chromium and saves a PNG of each page.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/server"
)

func main() {
	out := flag.String("out", "docs/console", "directory the PNGs are written to")
	policies := flag.String("policies", "examples/policies", "policy directory to serve")
	bin := flag.String("chromium", envOr("MESHGUARD_CHROMIUM_BIN", "/usr/bin/chromium"), "Chromium binary")
	flag.Parse()
	if err := run(*out, *policies, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "consoleshots:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// shot is one page to capture: where to go, what to do there, and the
// element whose appearance says the page is drawn.
type shot struct {
	name    string
	path    string // "" stays on the page the previous steps left
	actions []chromedp.Action[chromedp.Void]
	ready   string // a CSS selector
}

func run(out, policies, bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "consoleshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	base, token, stop, err := serve(ctx, tmp, policies)
	if err != nil {
		return err
	}
	defer stop()
	if err := decide(ctx, base, token); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(filepath.Join(tmp, "chromium")), chromedp.WindowSize(1366, 900))
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	const trace = "0af7651916cd43dd8448eb211c80319c"
	shots := []shot{
		{name: "login", path: "/ui/login", ready: "#token"},
		{name: "overview", actions: []chromedp.Action[chromedp.Void]{chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Submit(chromedp.CSS("#token")),
			chromedp.WaitVisible(chromedp.CSS("#rows")), chromedp.Navigate(base + "/ui/overview")}, ready: "#per-minute"},
		{name: "decisions", path: "/ui/decisions", ready: `#rows[data-live="true"]`},
		{name: "decision", actions: []chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS(`#rows tr.deny a`))}, ready: "#chain-link"},
		{name: "chain", path: "/ui/traces/" + trace, ready: ".tree"},
		{name: "policies", path: "/ui/policies", actions: []chromedp.Action[chromedp.Void]{
			chromedp.SendKeys(chromedp.CSS("#agent"), "researcher"), chromedp.SetValue(chromedp.CSS("#tags"), "researcher"),
			chromedp.SendKeys(chromedp.CSS("#action"), "read:docs"), chromedp.SetValue(chromedp.CSS("#resource"), "/docs/private/plan"),
			chromedp.Click(chromedp.CSS("#decide"))}, ready: "#play-result"},
		{name: "agents", path: "/ui/agents", ready: "#a-name"},
		{name: "approvals", path: "/ui/approvals", ready: "#f-status"},
		{name: "alerts", path: "/ui/alerts", ready: "#alert-triggers"},
		{name: "xds", path: "/ui/xds", ready: "#xds-version"},
	}
	for _, s := range shots {
		acts := []chromedp.Action[chromedp.Void]{}
		if s.path != "" {
			acts = append(acts, chromedp.Navigate(base+s.path))
		}
		acts = append(acts, s.actions...)
		acts = append(acts, chromedp.WaitVisible(chromedp.CSS(s.ready)))
		if err := chromedp.Do(tab, acts...); err != nil {
			return fmt.Errorf("page %s: %w", s.name, err)
		}
		png, err := chromedp.Run(tab, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			return fmt.Errorf("page %s: %w", s.name, err)
		}
		if err := os.WriteFile(filepath.Join(out, s.name+".png"), png, 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", filepath.Join(out, s.name+".png"))
	}
	return nil
}

// serve runs MeshGuard on loopback ports with a fresh data directory and
// a generated admin token.
func serve(ctx context.Context, dir, policies string) (base, token string, stop func(), err error) {
	cfg, err := config.Load("", nil, nil)
	if err != nil {
		return "", "", nil, err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", "", nil, err
	}
	cfg.AdminToken = hex.EncodeToString(b)
	cfg.Port, cfg.GRPCPort = 0, 0
	cfg.Host = "127.0.0.1"
	cfg.DataDir, cfg.PoliciesDir = filepath.Join(dir, "data"), policies
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, cfg, server.Options{Ready: ready, Announce: func(string) {}, Logger: slog.New(slog.DiscardHandler)})
	}()
	select {
	case a := <-ready:
		return "http://" + a.HTTP, cfg.AdminToken, func() { cancel(); <-done }, nil
	case err := <-done:
		cancel()
		return "", "", nil, fmt.Errorf("serving: %w", err)
	}
}

// decide creates two agents and makes a few decisions, some in one trace.
func decide(ctx context.Context, base, adminToken string) error {
	c, err := client.New(client.Config{BaseURL: base, AdminToken: adminToken})
	if err != nil {
		return err
	}
	tokens := map[string]string{}
	for _, a := range []api.CreateAgentRequest{
		{Name: "researcher", TrustTier: "verified", Tags: []string{"researcher"}},
		{Name: "emailer", TrustTier: "verified", Tags: []string{"emailer"}},
	} {
		got, err := c.CreateAgent(ctx, a)
		if err != nil {
			return fmt.Errorf("creating %s: %w", a.Name, err)
		}
		tokens[a.Name] = got.Token
	}
	for i, d := range []struct{ agent, action, resource string }{
		{"researcher", "read:docs", "/docs/handbook"},
		{"researcher", "read:docs", "/docs/private/plan"},
		{"researcher", "write:notes/today", ""},
		{"emailer", "send:email", ""},
		{"researcher", "write:email", ""},
		{"researcher", "read:web", "https://example.com/"},
	} {
		body, _ := json.Marshal(api.CheckRequest{Action: d.action, Resource: d.resource})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/check", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tokens[d.agent])
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", fmt.Sprintf("00-0af7651916cd43dd8448eb211c80319c-%016x-01", i+1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusForbidden {
			return errors.New("check " + d.action + ": " + resp.Status)
		}
	}
	return nil
}
