package gateway_test

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/extauthz"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// decided keeps the decision of the one request a pipeline sends the
// real engine (it is a Checker in front of it, not a stand-in for it).
type decided struct {
	c  *engine.Engine
	mu sync.Mutex
	d  *engine.Decision
}

func (k *decided) Check(ctx context.Context, r *engine.Request) (engine.Decision, error) {
	d, err := k.c.Check(ctx, r)
	k.mu.Lock()
	k.d = &d
	k.mu.Unlock()
	return d, err
}

func (k *decided) WantsBody(r *engine.Request) bool { return k.c.WantsBody(r) }

// take returns the decision since the last take, nil if the engine was
// not asked.
func (k *decided) take() *engine.Decision {
	k.mu.Lock()
	defer k.mu.Unlock()
	d := k.d
	k.d = nil
	return d
}

// pathOutcome is what an enforcement point made of a path: refused (by
// the point itself or by the engine, 400), or decided on resource.
type pathOutcome struct {
	refused  bool
	resource string
}

// decidePath sends "GET <prefix><p>" through h, parsed from the wire as
// net/http's server parses it, and reports what became of the path. ok is
// false when the request line does not parse at all.
func decidePath(t *testing.T, h http.Handler, k *decided, prefix, p, tok string) (pathOutcome, bool) {
	raw := "GET " + prefix + p + " HTTP/1.1\r\nHost: docs.internal\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		return pathOutcome{}, false
	}
	req.RemoteAddr = "127.0.0.1:1"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	d := k.take()
	switch {
	case d == nil || d.Status == http.StatusBadRequest:
		if w.Code < 400 {
			t.Fatalf("%q: status %d without a decision", p, w.Code)
		}
		return pathOutcome{refused: true}, true
	case d.Status == http.StatusUnauthorized:
		t.Fatalf("%q: the token was refused: %s", p, d.Reason)
	}
	return pathOutcome{resource: d.Resource}, true
}

// originForm reports whether p is a path and query as RFC 3986 spells
// them in an origin-form request target: unreserved characters,
// sub-delimiters, ':', '@', '/', '?' and percent-escapes. Outside it (a
// raw '"', '\\', non-ASCII) the two points legitimately differ in
// spelling: the gateway percent-encodes such bytes for the upstream it
// forwards to, while ext_authz sees whatever Envoy forwards.
func originForm(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/?%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// FuzzPathAgreement is a differential fuzz target over request paths: the
// gateway (`/proxy<p>`) and HTTP ext_authz (`/envoy/authz<p>`, the path
// Envoy forwards) put the same path to the same engine. For any path in
// RFC 3986's origin form, both must refuse it or both must be decided on
// the same resource: otherwise a rule written for one spelling would miss
// the request at the other point ("/wiki/Foo_(bar)" was decided at the
// gateway as "/wiki/Foo_%28bar%29"). Any other path must not panic and
// must parse at both or neither.
func FuzzPathAgreement(f *testing.F) {
	for _, s := range []string{
		"/docs/readme", "/docs/%72eadme", "/a!b", "/a%21b", "/wiki/Foo_(bar)", "/a*b", "/it's",
		"/docs/../admin", "/docs/%2e%2e/admin", "/a//b", "/a%2Fb", "/a%5cb", "/a;b", "/a%3Bb", "/a%3Fb",
		"/a%23b", "/a%00b", "/caf%C3%A9", "/caf%c3%a9", "/%7Euser", "/a%20b", "/a+b", "/a%2Bb", "?x=1",
		"", "/", "/a?b=%2F", "/a/?", "/a%", "/a%zz", "/a\\b", "/a\"b", "/é", "/a#b", "/A%3a@b",
	} {
		f.Add(s)
	}
	fx := enginetest.New(f, `
name: all
appliesTo: {tags: [all]}
rules:
  - {name: everything, effect: allow, actions: ["*"]}
`, enginetest.Options{})
	_, tok := fx.Agent(f, "all", trust.Verified, []string{"all"})
	k := &decided{c: fx.Engine}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	f.Cleanup(up.Close)
	gw, err := gateway.New(gateway.Config{Checker: k, Target: mustURL(f, up.URL), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	authz := extauthz.NewHTTPHandler(k, nil)
	f.Fuzz(func(t *testing.T, p string) {
		if p != "" && p[0] != '/' && p[0] != '?' {
			p = "/" + p
		}
		g, ok1 := decidePath(t, gw, k, gateway.Prefix, p, tok)
		a, ok2 := decidePath(t, authz, k, extauthz.PathPrefix, p, tok)
		if !ok1 || !ok2 {
			if ok1 != ok2 {
				t.Fatalf("%q: the request line parses for one point only", p)
			}
			return
		}
		if !originForm(p) {
			return // the request line parsed at both; spellings may differ
		}
		switch {
		case g.refused != a.refused:
			t.Fatalf("%q: gateway refused=%v (%q), ext_authz refused=%v (%q)", p, g.refused, g.resource, a.refused, a.resource)
		case g.resource != a.resource:
			t.Fatalf("%q: the gateway decides on resource %q, ext_authz on %q", p, g.resource, a.resource)
		}
	})
}
