package httpjson_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/internal/httpjson"
)

// TestRouter: what no route matches is answered in JSON — 405 with the
// methods allowed, in Allow and in the message, or 404 — every answer is
// marked nosniff and no-store, a handler's panic is a 500 that shows
// nothing of it (the log has it), and Routes lists every pattern
// registered, in order. A path that is not clean is a 404 too, not
// ServeMux's redirect. The bodies are the bytes clients have always read.
func TestRouter(t *testing.T) {
	var log bytes.Buffer
	r := httpjson.NewRouter(slog.New(slog.NewTextHandler(&log, nil)))
	ok := func(w http.ResponseWriter, _ *http.Request) {
		httpjson.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
	r.HandleFunc("GET /items", ok)
	r.HandleFunc("POST /items", ok)
	r.HandleFunc("PATCH /items/{id}", ok)
	r.HandleFunc("DELETE /items/{id}", ok)
	r.Handle("POST /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("the secret cause") }))
	if got, want := r.Routes(), []string{"GET /items", "POST /items", "PATCH /items/{id}", "DELETE /items/{id}", "POST /boom"}; !slices.Equal(got, want) {
		t.Fatalf("Routes() = %q, want %q", got, want)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	tests := []struct {
		name, method, path string
		status             int
		allow, body        string
	}{
		{"a route", "GET", "/items", 200, "", `{"status":"ok"}` + "\n"},
		{"HEAD of a GET route", "HEAD", "/items", 200, "", ""},
		{"an unknown path", "GET", "/nope", 404, "", `{"error":"not_found","message":"no such endpoint (see docs/api.md)"}` + "\n"},
		{"a path below a route", "GET", "/items/x/y", 404, "", `{"error":"not_found","message":"no such endpoint (see docs/api.md)"}` + "\n"},
		{"a wrong method", "DELETE", "/items", 405, "GET, HEAD, POST", `{"error":"method_not_allowed","message":"method DELETE is not allowed here; allowed: GET, HEAD, POST"}` + "\n"},
		{"a wrong method on a pattern", "PUT", "/items/x", 405, "PATCH, DELETE", `{"error":"method_not_allowed","message":"method PUT is not allowed here; allowed: PATCH, DELETE"}` + "\n"},
		{"a panic", "POST", "/boom", 500, "", `{"error":"internal","message":"internal error; see the server log"}` + "\n"},
		// ServeMux would redirect these (307, an HTML body) to the clean
		// path: no handler is reached either way, but the answer is JSON.
		{"a double slash", "GET", "//items", 404, "", `{"error":"not_found","message":"no such endpoint (see docs/api.md)"}` + "\n"},
		{"a dot segment", "GET", "/./items", 404, "", `{"error":"not_found","message":"no such endpoint (see docs/api.md)"}` + "\n"},
		{"a dot-dot segment", "POST", "/x/../items", 404, "", `{"error":"not_found","message":"no such endpoint (see docs/api.md)"}` + "\n"},
		{"an empty segment", "PATCH", "/items//1", 404, "", `{"error":"not_found","message":"no such endpoint (see docs/api.md)"}` + "\n"},
	}
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			h := res.Header
			if res.StatusCode != tc.status || h.Get("Allow") != tc.allow || string(body) != tc.body ||
				h.Get("Content-Type") != "application/json" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
				t.Fatalf("%d Allow=%q %v %q; want %d Allow=%q %q", res.StatusCode, h.Get("Allow"), h, body, tc.status, tc.allow, tc.body)
			}
		})
	}
	if !strings.Contains(log.String(), "the secret cause") {
		t.Errorf("the panic is not in the log: %s", log.String())
	}
}
