package extauthz

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestHTTPPathAsSent: the HTTP path gives the engine the request target
// exactly as Envoy forwarded it, never net/http's re-encoding of it
// (docs/enforcement.md: the engine must see the path as the caller sent
// it). Characters net/http would percent-encode on the way out ('{', '|',
// '"', '^', a byte over 0x7f) stay as they came.
func TestHTTPPathAsSent(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	srv := startHTTP(t, rec, testLog(t, nil))
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/docs/{id}", "/docs/a|b", `/docs/"x"^`, "/docs/caf\xc3\xa9", "/docs/{id}?q={x}"} {
		t.Run(path, func(t *testing.T) {
			// Opaque: the client writes the target as it is.
			req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL = &url.URL{Scheme: u.Scheme, Host: u.Host, Opaque: PathPrefix + path}
			req.Host = "docs.internal"
			req.Header.Set("Authorization", "Bearer "+m.orchT)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			r, n := rec.last()
			if n == 0 || r.Path != path {
				t.Fatalf("status %d; the engine saw %q, want %q", resp.StatusCode, r.Path, path)
			}
			if strings.Contains(r.Path, "%") {
				t.Fatalf("the path was re-encoded: %q", r.Path)
			}
		})
	}
}
