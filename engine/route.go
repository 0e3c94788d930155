package engine

import (
	"fmt"
	"strings"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/policy"
)

// Route maps requests to an action (the config's `routes:`,
// docs/enforcement.md). Host and Path are patterns of the policy pattern
// language (`*` matches anything); Method is exact, case-insensitive, or empty
// for any; Path is matched without the query string.
//
// Protocol declares an agent protocol (docs/mcp.md, docs/a2a.md) spoken by
// the service named Service: the action is then read from the request
// itself (the JSON-RPC body, the Agent Card's path), never set by the
// route, so a route has an action or a protocol, not both.
type Route struct {
	Host     string              `json:"host,omitempty" yaml:"host,omitempty"`
	Method   string              `json:"method,omitempty" yaml:"method,omitempty"`
	Path     string              `json:"path" yaml:"path"`
	Action   string              `json:"action,omitempty" yaml:"action,omitempty"`
	Protocol agentproto.Protocol `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	Service  string              `json:"service,omitempty" yaml:"service,omitempty"`
}

// MaxServiceLen bounds a route's service name: a DNS label, as catalogue
// service names are, since it becomes the resource of the protocol's actions
// (call:mail/send_email).
const MaxServiceLen = 63

// ValidProtocol reports whether p is a protocol a route or service may
// declare.
func ValidProtocol(p agentproto.Protocol) bool {
	return p == agentproto.MCP || p == agentproto.A2A
}

// ValidService reports whether s may name a protocol route's service: a DNS
// label (lower-case letters, digits and '-', not at either end).
func ValidService(s string) bool {
	if s == "" || len(s) > MaxServiceLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// ValidateRoutes checks routes as New does, so a configuration file's
// routes are refused when it is read; the error names the route by index
// and the field.
func ValidateRoutes(routes []Route) error {
	_, err := compileRoutes(routes)
	return err
}

type compiledRoute struct {
	host    policy.Glob // zero src: any host
	method  string      // upper case; "" = any
	path    policy.Glob
	action  string
	anyHost bool
	proto   agentproto.Protocol
	service string
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
		if err := checkProtocol(r, bad); err != nil {
			return nil, err
		}
		switch {
		case r.Path == "" || !strings.HasPrefix(r.Path, "/") && r.Path != "*":
			return nil, bad("path", "%q: expected a path pattern starting with /", r.Path)
		case len(r.Path) > MaxPathLen || len(r.Host) > MaxHostLen:
			return nil, bad("path", "longer than the limit")
		case m != "" && m != "*" && !contains(httpMethods, m):
			return nil, bad("method", "%q: expected an HTTP method or * (any)", r.Method)
		case r.Protocol != "" && r.Action != "":
			return nil, bad("action", "%q with protocol %s: a protocol route's action is read from each request (docs/mcp.md); map other paths with routes of their own", r.Action, r.Protocol)
		case r.Protocol != "":
			// The request says the action (docs/mcp.md).
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
			proto: r.Protocol, service: r.Service,
		})
	}
	return out, nil
}

// checkProtocol validates a route's protocol and service: both or neither.
func checkProtocol(r Route, bad func(field, format string, args ...any) error) error {
	switch {
	case r.Protocol != "" && !ValidProtocol(r.Protocol):
		return bad("protocol", "%q: expected mcp or a2a", r.Protocol)
	case r.Protocol != "" && r.Service == "":
		return bad("service", "required with protocol %s: the name of the service speaking it", r.Protocol)
	case r.Protocol == "" && r.Service != "":
		return bad("service", "%q without a protocol: declare protocol: mcp or a2a, or remove service", r.Service)
	case r.Service != "" && !ValidService(r.Service):
		return bad("service", "%q: expected a DNS label (lower-case letters, digits and '-', at most %d)", r.Service, MaxServiceLen)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// route returns the first route matching, or nil.
func (e *Engine) route(method, host, path string) *compiledRoute {
	for i := range e.routes {
		r := &e.routes[i]
		if (r.method == "" || r.method == method) && (r.anyHost || r.host.Match(host)) && r.path.Match(path) {
			return r
		}
	}
	return nil
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
