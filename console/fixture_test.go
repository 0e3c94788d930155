package console_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/console"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/trust"
)

// traceID is the trace every check of the fixture belongs to.
const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

const adminToken = "console-test-admin-token-0123456789"

const testPolicies = `name: readers
appliesTo: {tags: [reader]}
rules:
  - {name: no-secrets, effect: deny, actions: ["read:secrets/*"]}
  - {name: reads, effect: allow, actions: ["read:*"]}
`

// fixture is a console over a real engine and SQLite store, served on
// 127.0.0.1 by httptest.
type fixture struct {
	f      *enginetest.Fixture
	router *httpjson.Router
	srv    *httptest.Server
	reader string // a reader agent's token
}

func newFixture(t *testing.T, mutate func(*console.Config)) *fixture {
	t.Helper()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	approvals, err := approvalapi.New(t.Context(), approvalapi.Config{Store: f.Store, Recorder: f.Audit})
	if err != nil {
		t.Fatal(err)
	}
	cfg := console.Config{Token: admin.NewTokenCheck(adminToken), Secret: []byte(strings.Repeat("s", 32)), Audit: f.Store,
		Agents: f.Store, Policies: f.Policies, Limiter: f.Limiter, FollowPoll: 20 * time.Millisecond, Approvals: approvals}
	if mutate != nil {
		mutate(&cfg)
	}
	// The agents pages go through the admin API's own handlers, logging
	// where the console logs.
	api, err := admin.New(admin.Config{Store: f.Store, Keys: f.Keys, Issuer: f.Issuer, Verifier: f.Verifier,
		Tokens: f.Cached, Agents: f.Agents, Policies: f.Policies, Audit: f.Store, AdminToken: adminToken, Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AgentAPI == nil {
		cfg.AgentAPI = api.AgentsHandler()
	}
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	router := httpjson.NewRouter(nil)
	c.Register(router)
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	_, tok := f.Agent(t, "reader-1", trust.Verified, []string{"reader"})
	return &fixture{f: f, router: router, srv: srv, reader: tok}
}

// check decides a request as the reader and returns the audit record's id
// once it is stored.
func (fx *fixture) check(t *testing.T, path string) string {
	t.Helper()
	return fx.checkMethod(t, "GET", path)
}

// checkMethod is check with another method (POST /x is write:x).
func (fx *fixture) checkMethod(t *testing.T, method, path string) string {
	t.Helper()
	req := &engine.Request{Token: fx.reader, Method: method, Path: path, Source: engine.SourceGateway}
	req.SetTraceparent("00-" + traceID + "-00f067aa0ba902b7-01")
	d, err := fx.f.Engine.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	id := "aud_" + strings.TrimPrefix(d.ID, "dec_")
	eventually(t, "record "+id+" stored", func() bool {
		_, ok, err := fx.f.Store.AuditRecord(context.Background(), id)
		return err == nil && ok
	})
	return id
}

// client returns an HTTP client that keeps cookies and does not follow
// redirects (the tests read them).
func (fx *fixture) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// post sends a form from this origin (Origin set as a browser does).
func (fx *fixture) post(t *testing.T, c *http.Client, path string, form url.Values, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fx.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// signIn signs c in with the admin token.
func (fx *fixture) signIn(t *testing.T, c *http.Client) {
	t.Helper()
	resp := fx.post(t, c, "/ui/login", url.Values{"token": {adminToken}}, fx.srv.URL)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %s", resp.Status)
	}
}

func (fx *fixture) get(t *testing.T, c *http.Client, path string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(fx.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

// eventually polls cond (for something that will become true) with a
// generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
