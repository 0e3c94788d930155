package server

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/console"
)

// consoleClient signs in to r's console with the admin token and returns
// an HTTP client holding the session.
func consoleClient(t *testing.T, r *running) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + r.addrs.HTTP
	req, err := http.NewRequest(http.MethodPost, base+"/ui/login", strings.NewReader(url.Values{"token": {r.adminToken(t)}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signing in: %s", resp.Status)
	}
	return c
}

// consolePage reads one console page.
func consolePage(t *testing.T, c *http.Client, r *running, path string) (int, string) {
	t.Helper()
	resp, err := c.Get("http://" + r.addrs.HTTP + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestConsoleStatusPages: the alerts page shows what GET /admin/alerts
// shows (the providers and where they send, never a secret); the xDS page
// shows a connected node and the version it ACKed.
func TestConsoleStatusPages(t *testing.T) {
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(recv.Close)
	hook := recv.URL
	file := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(file, []byte(servicesV1), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, func(c *config.Config) {
		c.ServicesFile = file
		c.Alerts.On, _ = alert.ParseTriggers("deny")
		c.Alerts.WebhookURL, c.Alerts.WebhookSecret = hook+"/hook?key=query-secret", "hook-secret"
		c.Alerts.RateLimit, c.Alerts.Instance = 10, "mg-console-test"
	})
	c := consoleClient(t, r)
	// Without a session, each page sends the browser to sign in; with one,
	// it carries the console's CSP.
	for _, path := range []string{"/ui/alerts", "/ui/xds"} {
		anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := anon.Get("http://" + r.addrs.HTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
			t.Fatalf("%s without a session: %s to %q", path, resp.Status, resp.Header.Get("Location"))
		}
		resp, err = c.Get("http://" + r.addrs.HTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.Header.Get("Content-Security-Policy") != console.ContentSecurityPolicy {
			t.Fatalf("%s: CSP %q", path, resp.Header.Get("Content-Security-Policy"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	st, err := r.admin.Alerts(ctx)
	if err != nil || len(st.Providers) != 1 {
		t.Fatalf("GET /admin/alerts: %+v, %v", st, err)
	}
	code, page := consolePage(t, c, r, "/ui/alerts")
	if code != http.StatusOK {
		t.Fatalf("/ui/alerts: %d", code)
	}
	for _, want := range []string{`data-provider="` + st.Providers[0].Name + `"`, st.Providers[0].Target, "mg-console-test", "10 a minute", "deny"} {
		if !strings.Contains(page, want) {
			t.Errorf("the alerts page lacks %q", want)
		}
	}
	for _, secret := range []string{"hook-secret", "query-secret"} {
		if strings.Contains(page, secret) {
			t.Errorf("the alerts page shows the secret %q", secret)
		}
	}

	clusters := watchClusters(ctx, t, r, "envoy-console")
	v, _ := clusters()
	eventually(t, "the node's ACK on /ui/xds", func() bool {
		code, page := consolePage(t, c, r, "/ui/xds")
		return code == http.StatusOK && strings.Contains(page, `<tr data-node="envoy-console">`) &&
			strings.Contains(page, `<code>Cluster</code> `+v+`<br>`) && strings.Contains(page, `<code id="xds-version">`+v+`</code>`)
	})
}
