package engine

import (
	"fmt"
	"strings"

	"github.com/meshguard/meshguard/policy"
)

// Route maps requests to an action (the config's `routes:`,
// docs/enforcement.md). Host and Path are patterns of the policy pattern
// language (`*` matches anything); Method is exact, case-insensitive, or empty
// for any; Path is matched without the query string.
type Route struct {
	Host   string `json:"host,omitempty" yaml:"host,omitempty"`
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	Path   string `json:"path" yaml:"path"`
	Action string `json:"action" yaml:"action"`
}

type compiledRoute struct {
	host    policy.Glob // zero src: any host
	method  string      // upper case; "" = any
	path    policy.Glob
	action  string
	anyHost bool
}

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// compileRoutes validates routes; the error names the route by index and the
// field.
func compileRoutes(routes []Route) ([]compiledRoute, error) {
	out := make([]compiledRoute, 0, len(routes))
	for i, r := range routes {
		bad := func(field, format string, args ...any) error {
			return fmt.Errorf("routes[%d].%s: %s", i, field, fmt.Sprintf(format, args...))
		}
		m := strings.ToUpper(r.Method)
		switch {
		case r.Path == "" || !strings.HasPrefix(r.Path, "/") && r.Path != "*":
			return nil, bad("path", "%q: expected a path pattern starting with /", r.Path)
		case len(r.Path) > MaxPathLen || len(r.Host) > MaxHostLen:
			return nil, bad("path", "longer than the limit")
		case m != "" && m != "*" && !contains(httpMethods, m):
			return nil, bad("method", "%q: expected an HTTP method or * (any)", r.Method)
		case r.Action == "" || len(r.Action) > MaxActionLen || strings.ContainsAny(r.Action, " \t\r\n*"):
			return nil, bad("action", "%q: expected an action verb:resource without spaces or *", r.Action)
		case !strings.Contains(r.Action, ":"):
			return nil, bad("action", "%q: expected verb:resource", r.Action)
		}
		if m == "*" {
			m = ""
		}
		out = append(out, compiledRoute{
			host: policy.CompileGlob(strings.ToLower(r.Host)), anyHost: r.Host == "" || r.Host == "*",
			method: m, path: policy.CompileGlob(r.Path), action: r.Action,
		})
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// route returns the action of the first route matching, or "".
func (e *Engine) route(method, host, path string) string {
	for i := range e.routes {
		r := &e.routes[i]
		if (r.method == "" || r.method == method) && (r.anyHost || r.host.Match(host)) && r.path.Match(path) {
			return r.action
		}
	}
	return ""
}

// derivedVerb is the method → verb mapping of docs/enforcement.md.
func derivedVerb(method string) string {
	switch method {
	case "GET", "HEAD", "OPTIONS":
		return "read"
	case "POST", "PUT", "PATCH":
		return "write"
	case "DELETE":
		return "delete"
	}
	return ""
}

// splitPath separates the query string from a request path.
func splitPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}
