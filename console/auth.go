package console

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// ContentSecurityPolicy is sent with every answer: scripts and styles
// from the console's own files only (no inline script or style), no
// framing, forms only to itself.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxFormBytes bounds a form body: the largest is the sign-in's token.
const maxFormBytes = 8 << 10

// secured sets the security headers on every answer.
func secured(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

type sessionKey struct{}

// requireSession lets a request through with a valid session: a page
// without one is sent to sign in; a POST must also carry the session's
// CSRF token and come from this origin.
func (c *Console) requireSession(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
				return
			}
			c.problem(w, r, http.StatusUnauthorized, "Signed out", "Sign in again.")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) {
				c.problem(w, r, http.StatusForbidden, "Refused", "This form was not sent from the console's own pages.")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil || !c.keys.checkCSRF(s, r.PostForm.Get("csrf")) {
				c.problem(w, r, http.StatusForbidden, "Refused", "The form's CSRF token is missing or wrong: reload the page and try again.")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	}
}

// session reads and verifies the session cookie.
func (c *Console) session(r *http.Request) (session, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return session{}, false
	}
	s, err := c.keys.decode(ck.Value, c.cfg.Now())
	return s, err == nil
}

// csrf is the CSRF token of the request's session (set by requireSession).
func (c *Console) csrf(r *http.Request) string {
	s, ok := r.Context().Value(sessionKey{}).(session)
	if !ok {
		return ""
	}
	return c.keys.csrfToken(s)
}

// sameOrigin reports whether a state-changing request came from a page
// of this host: Origin, or failing that Referer, must name it (and https
// when the request came over TLS). Neither is refused: fail closed.
func sameOrigin(r *http.Request) bool {
	v := r.Header.Get("Origin")
	if v == "" || v == "null" {
		v = r.Header.Get("Referer")
	}
	if v == "" {
		return false
	}
	u, err := url.Parse(v)
	if err != nil || u.Host != r.Host || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return r.TLS == nil || u.Scheme == "https"
}

// loginPage shows the sign-in form (or goes on, already signed in).
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.session(r); ok {
		http.Redirect(w, r, "/ui/decisions", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", view{Title: "Sign in"})
}

// loginRefused is the one message of every failed sign-in: a wrong token
// and a valid agent token read the same.
const loginRefused = "That token does not sign in. Use the admin token (ADMIN_TOKEN)."

// login checks the admin token and starts a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	// The origin first: a form another site's page makes the admin's
	// browser send must not use up the admin's address's attempts.
	if !sameOrigin(r) {
		c.problem(w, r, http.StatusForbidden, "Refused", "This form was not sent from the console's own pages.")
		return
	}
	if !c.allowLogin(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.render(w, r, http.StatusBadRequest, "login", view{Title: "Sign in", Error: "The form did not arrive whole."})
		return
	}
	if !c.cfg.Token.Matches(r.PostForm.Get("token")) {
		c.log.Warn("console: a sign-in was refused", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login", view{Title: "Sign in", Error: loginRefused})
		return
	}
	s, err := newSession(c.cfg.Now(), c.cfg.SessionTTL)
	if err != nil {
		c.log.Error("console: starting a session", "error", err)
		c.problem(w, r, http.StatusInternalServerError, "Internal error", "See the server log.")
		return
	}
	http.SetCookie(w, sessionCookie(r, c.keys.encode(s), s.expires, int(c.cfg.SessionTTL/time.Second)))
	c.log.Info("console: signed in", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/decisions", http.StatusSeeOther)
}

// logout clears the session cookie.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, sessionCookie(r, "", time.Unix(0, 0), -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// allowLogin applies the per-address limit on sign-in attempts: the
// peer's address, never a header a client can set (as approval links).
func (c *Console) allowLogin(w http.ResponseWriter, r *http.Request) bool {
	key := "console-login/ip/unknown"
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			a = a.Unmap()
			key = "console-login/ip/" + a.String()
			if a.Is6() {
				p, _ := a.Prefix(64)
				key = "console-login/ip/" + p.String()
			}
		}
	}
	res, err := c.cfg.Limiter.Allow(r.Context(), key, c.cfg.LoginRPM, time.Minute)
	switch {
	case err != nil:
		c.log.Error("console: the rate limiter failed", "error", err)
		c.problem(w, r, http.StatusServiceUnavailable, "MeshGuard cannot answer now", "Try again in a moment.")
		return false
	case !res.Allowed:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(res.RetryAfter.Seconds()+0.999))))
		c.problem(w, r, http.StatusTooManyRequests, "Too many sign-in attempts", "Try again in a minute.")
		return false
	}
	return true
}
