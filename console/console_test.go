package console_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/console"
)

// TestSignIn: only the admin token signs in; a valid agent token reads
// exactly like a wrong token; the cookie is a signed session, not the
// token, with the attributes docs/console.md promises.
func TestSignIn(t *testing.T) {
	fx := newFixture(t, nil)
	for _, tc := range []struct {
		name, token, origin string
		want                int
	}{
		{name: "admin token", token: adminToken, origin: "self", want: http.StatusSeeOther},
		{name: "wrong token", token: "not-the-admin-token-at-all", origin: "self", want: http.StatusUnauthorized},
		{name: "a valid agent token", token: fx.reader, origin: "self", want: http.StatusUnauthorized},
		{name: "empty", token: "", origin: "self", want: http.StatusUnauthorized},
		{name: "admin token from another origin", token: adminToken, origin: "http://evil.example", want: http.StatusForbidden},
		{name: "admin token without Origin or Referer", token: adminToken, origin: "", want: http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fx.client(t)
			origin := tc.origin
			if origin == "self" {
				origin = fx.srv.URL
			}
			resp := fx.post(t, c, "/ui/login", url.Values{"token": {tc.token}}, origin)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %s, want %d", resp.Status, tc.want)
			}
			cookies := resp.Cookies()
			if tc.want != http.StatusSeeOther {
				if len(cookies) != 0 {
					t.Fatalf("a refused sign-in set cookies: %v", cookies)
				}
				return
			}
			if len(cookies) != 1 {
				t.Fatalf("cookies %v, want one session cookie", cookies)
			}
			ck := cookies[0]
			switch {
			case ck.Name != console.CookieName, !ck.HttpOnly, ck.SameSite != http.SameSiteStrictMode, ck.Path != console.Prefix,
				ck.Secure, // plain HTTP here: Secure only over TLS
				ck.MaxAge != int(console.DefaultSessionTTL/time.Second):
				t.Fatalf("cookie %+v: want %s, HttpOnly, SameSite=Strict, Path=/ui/, not Secure over http, Max-Age 12 h", ck, console.CookieName)
			case strings.Contains(ck.Value, adminToken):
				t.Fatal("the cookie carries the admin token")
			}
			if loc := resp.Header.Get("Location"); loc != "/ui/decisions" {
				t.Fatalf("redirect to %q", loc)
			}
			if r, _ := fx.get(t, c, "/ui/decisions"); r.StatusCode != http.StatusOK {
				t.Fatalf("signed in, /ui/decisions: %s", r.Status)
			}
		})
	}
}

// TestRefusedSignInsReadAlike: an agent's valid token gets the same page,
// word for word, as a wrong token: nothing tells a caller which tokens
// are agents'.
func TestRefusedSignInsReadAlike(t *testing.T) {
	fx := newFixture(t, nil)
	body := func(tok string) string {
		resp := fx.post(t, fx.client(t), "/ui/login", url.Values{"token": {tok}}, fx.srv.URL)
		var b strings.Builder
		buf := make([]byte, 8192)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return b.String()
	}
	agent, wrong := body(fx.reader), body("not-the-admin-token-at-all")
	if agent != wrong || !strings.Contains(agent, "That token does not sign in") {
		t.Fatalf("an agent token's page differs from a wrong token's, or says nothing:\nagent: %s\nwrong: %s", agent, wrong)
	}
}

// TestSessions: every page but sign-in and the static files needs a valid
// session; a forged, expired or foreign one (signed under another admin
// token: what rotating ADMIN_TOKEN does) is none.
func TestSessions(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	u, _ := url.Parse(fx.srv.URL + "/ui/")
	valid := c.Jar.Cookies(u)[0].Value
	// Another console: another admin token, the same stored secret.
	other := newFixture(t, func(cfg *console.Config) { cfg.Token = admin.NewTokenCheck("the-rotated-admin-token-9876543210") })
	oc := other.client(t)
	resp := other.post(t, oc, "/ui/login", url.Values{"token": {"the-rotated-admin-token-9876543210"}}, other.srv.URL)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in on the other console: %s", resp.Status)
	}
	foreign := resp.Cookies()[0].Value
	// One signed long ago, on a console whose clock is a day behind.
	past := newFixture(t, func(cfg *console.Config) {
		cfg.Now = func() time.Time { return time.Now().Add(-24 * time.Hour) }
	})
	pc := past.client(t)
	resp = past.post(t, pc, "/ui/login", url.Values{"token": {adminToken}}, past.srv.URL)
	expired := resp.Cookies()[0].Value

	mac := valid[strings.IndexByte(valid, '.'):]
	cookies := []struct{ name, value string }{
		{"none", ""},
		{"forged", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" + mac},
		{"the admin token itself", adminToken},
		{"signed under another admin token", foreign},
		{"expired", expired},
		{"valid (control)", valid},
	}
	for _, route := range fx.router.Routes() {
		method, path, _ := strings.Cut(route, " ")
		public := false
		for _, p := range console.Public {
			public = public || p == route
		}
		if public {
			continue // sign-in and the static files: TestSignIn, TestSecurityHeaders
		}
		path = strings.NewReplacer("{$}", "", "{id}", "no-such-record", "{traceId}", traceID, "{file}", "console.css").Replace(path)
		for _, ck := range cookies {
			t.Run(route+"/"+ck.name, func(t *testing.T) {
				req, _ := http.NewRequest(method, fx.srv.URL+path, strings.NewReader(""))
				req.Header.Set("Origin", fx.srv.URL)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if ck.value != "" {
					req.AddCookie(&http.Cookie{Name: console.CookieName, Value: ck.value})
				}
				if strings.HasSuffix(path, "/stream") {
					// A session gets an endless stream: the headers say enough.
					ctx, cancel := contextWithCancel(t)
					defer cancel()
					req = req.WithContext(ctx)
				}
				resp, err := fx.client(t).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				refused := resp.StatusCode == http.StatusUnauthorized ||
					(resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/ui/login")
				switch {
				case ck.name == "valid (control)":
					if refused {
						t.Fatalf("%s with %s: refused (%s)", route, ck.name, resp.Status)
					}
				case !refused:
					t.Fatalf("%s with %s: %s, want sent to sign in", route, ck.name, resp.Status)
				}
			})
		}
	}
}

// TestCSRF: a state-changing form needs the session's CSRF token and
// this origin; the token of another session is worthless.
func TestCSRF(t *testing.T) {
	fx := newFixture(t, nil)
	tokenOf := func(c *http.Client) string {
		_, body := fx.get(t, c, "/ui/decisions")
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatal("no CSRF token on the page")
		}
		return m[1]
	}
	otherC := fx.client(t)
	fx.signIn(t, otherC)
	otherToken := tokenOf(otherC)
	for _, tc := range []struct {
		name   string
		csrf   func(own string) string
		origin func() string
		want   int
	}{
		{"no token", func(string) string { return "" }, func() string { return fx.srv.URL }, http.StatusForbidden},
		{"a wrong token", func(own string) string { return strings.Repeat("A", len(own)) }, func() string { return fx.srv.URL }, http.StatusForbidden},
		{"another session's token", func(string) string { return otherToken }, func() string { return fx.srv.URL }, http.StatusForbidden},
		{"own token from another origin", func(own string) string { return own }, func() string { return "http://evil.example" }, http.StatusForbidden},
		{"own token without Origin", func(own string) string { return own }, func() string { return "" }, http.StatusForbidden},
		{"own token, this origin (control)", func(own string) string { return own }, func() string { return fx.srv.URL }, http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fx.client(t)
			fx.signIn(t, c)
			own := tokenOf(c)
			resp := fx.post(t, c, "/ui/logout", url.Values{"csrf": {tc.csrf(own)}}, tc.origin())
			if resp.StatusCode != tc.want {
				t.Fatalf("sign-out: %s, want %d", resp.Status, tc.want)
			}
			signedOut := len(resp.Cookies()) == 1 && resp.Cookies()[0].MaxAge < 0
			if signedOut != (tc.want == http.StatusSeeOther) {
				t.Fatalf("signed out: %t, want %t", signedOut, tc.want == http.StatusSeeOther)
			}
		})
	}
}

// TestLoginRateLimited: sign-in attempts are limited per client address.
func TestLoginRateLimited(t *testing.T) {
	fx := newFixture(t, func(cfg *console.Config) { cfg.LoginRPM = 3 })
	c := fx.client(t)
	for i := range 3 {
		if resp := fx.post(t, c, "/ui/login", url.Values{"token": {"wrong-guess-number-" + string(rune('a'+i))}}, fx.srv.URL); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %s", i+1, resp.Status)
		}
	}
	resp := fx.post(t, c, "/ui/login", url.Values{"token": {adminToken}}, fx.srv.URL)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || len(resp.Cookies()) != 0 {
		t.Fatalf("the fourth attempt in a minute: %s (Retry-After %q), want 429 and no session", resp.Status, resp.Header.Get("Retry-After"))
	}
}

// TestCookieSecureOverTLS: over TLS the session cookie is Secure, and a
// form must come from an https origin.
func TestCookieSecureOverTLS(t *testing.T) {
	fx := newFixture(t, nil)
	tlsSrv := httptest.NewTLSServer(fx.router)
	t.Cleanup(tlsSrv.Close)
	c := tlsSrv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct {
		name, origin string
		want         int
	}{
		{"an http origin", strings.Replace(tlsSrv.URL, "https:", "http:", 1), http.StatusForbidden},
		{"its https origin", tlsSrv.URL, http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tlsSrv.URL+"/ui/login", strings.NewReader(url.Values{"token": {adminToken}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", tc.origin)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s, want %d", resp.Status, tc.want)
			}
			if tc.want == http.StatusSeeOther && (len(resp.Cookies()) != 1 || !resp.Cookies()[0].Secure) {
				t.Fatalf("cookies %v: want one, Secure", resp.Cookies())
			}
		})
	}
}
