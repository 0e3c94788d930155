package console_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/console"
	"github.com/meshguard/meshguard/trust"
)

// TestStreamEndsWithItsSession: a live view opened in a session ends when
// the session expires; an open stream does not outlive the sign-in.
func TestStreamEndsWithItsSession(t *testing.T) {
	var skew atomic.Int64 // how far the console's clock is ahead
	fx := newFixture(t, func(cfg *console.Config) {
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	c := fx.client(t)
	fx.signIn(t, c)
	_, page := fx.get(t, c, "/ui/decisions")
	m := regexp.MustCompile(`data-stream="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no stream URL on the page")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fx.srv.URL+strings.ReplaceAll(m[1], "&amp;", "&"), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %s", resp.Status)
	}
	// The stream is open; now the session's time runs out.
	skew.Store(int64(console.DefaultSessionTTL + time.Minute))
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		ended <- err
	}()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("the stream broke instead of ending: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream outlived its session: still open 20 s after the session expired")
	}
}

// openStream opens the live decisions stream as c and returns its answer
// (closed at cleanup, or by the caller).
func openStream(t *testing.T, fx *fixture, c *http.Client) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fx.srv.URL+"/ui/decisions/stream", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// TestStreamsPerSession: one session cannot take every live view: beyond
// MaxStreamsPerSession its next stream is refused while another session
// still gets one.
func TestStreamsPerSession(t *testing.T) {
	fx := newFixture(t, nil)
	greedy, other := fx.client(t), fx.client(t)
	fx.signIn(t, greedy)
	fx.signIn(t, other)
	var first *http.Response
	for i := range console.MaxStreamsPerSession {
		resp := openStream(t, fx, greedy)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of one session: %s", i+1, resp.Status)
		}
		if first == nil {
			first = resp
		}
	}
	if resp := openStream(t, fx, greedy); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("stream %d of one session: %s, want 503", console.MaxStreamsPerSession+1, resp.Status)
	}
	if resp := openStream(t, fx, other); resp.StatusCode != http.StatusOK {
		t.Fatalf("another session's stream: %s", resp.Status)
	}
	// A closed view gives its slot back to its session.
	_ = first.Body.Close()
	eventually(t, "a slot given back", func() bool {
		resp := openStream(t, fx, greedy)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestEveryFormNeedsCSRF: every POST route the console registers (read
// from the router, so a new form cannot go unchecked) refuses a signed-in
// request without the session's CSRF token, or with it from another
// origin, or with it as a query parameter instead of in the form.
func TestEveryFormNeedsCSRF(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	_, page := fx.get(t, c, "/ui/decisions")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	own := m[1]
	agent, _ := fx.f.Agent(t, "csrf-target", trust.Verified, []string{"reader"})
	posts := 0
	for _, route := range fx.router.Routes() {
		method, path, _ := strings.Cut(route, " ")
		if method != http.MethodPost || route == "POST /ui/login" {
			continue // sign-in has no session yet: TestSignIn checks its origin
		}
		posts++
		path = strings.NewReplacer("{id}", agent.ID).Replace(path)
		for _, tc := range []struct {
			name, query, origin string
			form                url.Values
		}{
			{"no token", "", fx.srv.URL, url.Values{"decision": {"approve"}}},
			{"own token from another origin", "", "http://evil.example", url.Values{"csrf": {own}}},
			{"own token in the query", "?csrf=" + url.QueryEscape(own), fx.srv.URL, url.Values{}},
		} {
			t.Run(route+"/"+tc.name, func(t *testing.T) {
				resp := fx.post(t, c, path+tc.query, tc.form, tc.origin)
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("%s: %s, want 403", tc.name, resp.Status)
				}
			})
		}
	}
	if posts < 5 {
		t.Fatalf("only %d POST routes found", posts)
	}
	// Nothing was done: the agent is neither revoked nor changed.
	got, err := fx.f.Store.GetAgentByName(t.Context(), "csrf-target")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != agent.Status || got.TrustTier != agent.TrustTier || strings.Join(got.Tags, ",") != "reader" {
		t.Fatalf("the agent changed under refused forms: %+v", got)
	}
}

// TestHostileValuesAreText: a request whose path carries markup is shown
// as text on every page that draws its record (the list, the decision,
// the chain), never as an element or attribute.
func TestHostileValuesAreText(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	const payload = `/docs/"><svg onload=alert(1)><img src=x onerror=alert(2)>'`
	id := fx.check(t, payload)
	for _, path := range []string{"/ui/decisions", "/ui/decisions/" + id, "/ui/traces/" + traceID} {
		t.Run(path, func(t *testing.T) {
			resp, body := fx.get(t, c, path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s", resp.Status)
			}
			if !strings.Contains(body, "svg onload") && !strings.Contains(body, "&lt;svg onload") {
				t.Fatal("the record is not on the page (the test would prove nothing)")
			}
			for _, bad := range []string{"<svg onload", "<img src=x"} {
				if strings.Contains(body, bad) {
					t.Fatalf("the page holds %q unescaped", bad)
				}
			}
		})
	}
}

// TestForeignSignInsDoNotLockOut: sign-in forms another site's page makes
// the admin's browser send (refused: another origin) do not use up the
// admin's address's sign-in attempts.
func TestForeignSignInsDoNotLockOut(t *testing.T) {
	fx := newFixture(t, func(cfg *console.Config) { cfg.LoginRPM = 3 })
	c := fx.client(t)
	for i := range 10 {
		if resp := fx.post(t, c, "/ui/login", url.Values{"token": {"a-guess"}}, "http://evil.example"); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("foreign attempt %d: %s, want 403", i+1, resp.Status)
		}
	}
	if resp := fx.post(t, c, "/ui/login", url.Values{"token": {adminToken}}, fx.srv.URL); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the admin's own sign-in after foreign attempts: %s, want 303", resp.Status)
	}
}

// TestOversizedSignIn: a sign-in body beyond the form limit is refused
// whole, with no session, before the token is hashed.
func TestOversizedSignIn(t *testing.T) {
	fx := newFixture(t, nil)
	resp := fx.post(t, fx.client(t), "/ui/login", url.Values{"token": {adminToken + strings.Repeat("x", 16<<10)}}, fx.srv.URL)
	if resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 0 {
		t.Fatalf("%s with cookies %v, want 400 and none", resp.Status, resp.Cookies())
	}
}

// TestTraceURLNeverScript: even a javascript: trace URL template (config
// refuses one; a program embedding the console might not) is never a
// live link on the decision or chain page.
func TestTraceURLNeverScript(t *testing.T) {
	fx := newFixture(t, func(cfg *console.Config) { cfg.TraceURL = "javascript:alert(document.domain)//{traceId}" })
	c := fx.client(t)
	fx.signIn(t, c)
	id := fx.check(t, "/docs/a")
	for _, path := range []string{"/ui/decisions/" + id, "/ui/traces/" + traceID} {
		_, body := fx.get(t, c, path)
		if !strings.Contains(body, "tracing backend") {
			t.Fatalf("%s: no tracing backend link (the test would prove nothing)", path)
		}
		if strings.Contains(strings.ToLower(body), "javascript:") {
			t.Fatalf("%s: a javascript: URL on the page", path)
		}
	}
}
