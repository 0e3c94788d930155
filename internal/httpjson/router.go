package httpjson

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
)

// Router is the one mux of MeshGuard's HTTP API on the main port: the
// admin API, the agents' decision API and the wasm filter's backend each
// register their routes on it. It remembers every pattern registered
// (Routes) and has no other way in, so the credential tests, which read
// that list, see every route; it answers 404 and 405 in JSON like
// everything else, and turns a handler's panic into a 500, never a stack
// trace to the caller.
type Router struct {
	mux      *http.ServeMux
	patterns []string
	log      *slog.Logger
}

// NewRouter returns an empty Router; log (nil discards) is told of
// handler panics.
func NewRouter(log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{mux: http.NewServeMux(), log: log}
}

// Handle registers h for pattern (http.ServeMux's syntax, "GET
// /admin/agents/{id}"). Like ServeMux it panics on a conflicting pattern.
func (m *Router) Handle(pattern string, h http.Handler) {
	m.mux.Handle(pattern, h)
	m.patterns = append(m.patterns, pattern)
}

// HandleFunc registers h for pattern.
func (m *Router) HandleFunc(pattern string, h http.HandlerFunc) { m.Handle(pattern, h) }

// Routes lists the pattern of every route registered, in the order they
// were: tests hold each route to its credential, so a new one cannot go
// untested.
func (m *Router) Routes() []string { return slices.Clone(m.patterns) }

// probeMethods are tried to tell a wrong method (405) from an unknown path
// (404).
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// ServeHTTP routes a request. Every answer is marked nosniff and
// no-store; a handler may override the latter.
func (m *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			m.log.Error("http: handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			WriteError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
		}
	}()
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	// ServeMux answers a path that is not clean with a redirect to the
	// clean one (an HTML body, a second request): no route has such a
	// path, so it is a 404 like any path no route has.
	if !clean(r.URL.Path) {
		WriteError(w, http.StatusNotFound, "not_found", "no such endpoint (see docs/api.md)")
		return
	}
	if _, pattern := m.mux.Handler(r); pattern != "" {
		m.mux.ServeHTTP(w, r)
		return
	}
	var allowed []string
	for _, method := range probeMethods {
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := m.mux.Handler(probe); pattern != "" {
			allowed = append(allowed, method)
			if method == http.MethodGet {
				allowed = append(allowed, http.MethodHead)
			}
		}
	}
	if len(allowed) > 0 {
		list := strings.Join(allowed, ", ")
		h.Set("Allow", list)
		WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method %s is not allowed here; allowed: %s", r.Method, list)
		return
	}
	WriteError(w, http.StatusNotFound, "not_found", "no such endpoint (see docs/api.md)")
}

// clean reports whether p is a path ServeMux serves without redirecting:
// absolute, with no empty, "." or ".." segment (a trailing slash is kept).
func clean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c == p
}
