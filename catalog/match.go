package catalog

import (
	"sort"
	"strings"

	"github.com/meshguard/meshguard/identity"
)

// OrderedRoutes returns s's routes in the order a proxy tries them: longer
// paths first, so a prefix never hides a more specific route; equal
// lengths keep the order given. MeshGuard's xDS writes Envoy's routes in
// this order and the wasm filter matches in it, so both find the same
// route for a request.
func (s *Service) OrderedRoutes() []Route {
	rs := append([]Route(nil), s.Routes...)
	sort.SliceStable(rs, func(i, j int) bool {
		return len(strings.TrimSuffix(rs[i].Path, "*")) > len(strings.TrimSuffix(rs[j].Path, "*"))
	})
	return rs
}

// Prefix reports whether the route's path is a prefix ("/orders/*"), and
// returns the path without its '*'.
func (r *Route) Prefix() (string, bool) { return strings.CutSuffix(r.Path, "*") }

// Matches reports whether a request with this method and path (its query
// string already removed) takes the route, as Envoy's route match does:
// the method exactly (any when the route has none), the path exactly or
// by prefix.
func (r *Route) Matches(method, path string) bool {
	if r.Method != "" && r.Method != method {
		return false
	}
	if p, prefix := r.Prefix(); prefix {
		return strings.HasPrefix(path, p)
	}
	return path == r.Path
}

// Lookup returns the service a request for host (possibly with a port, in
// any case) goes to, or nil.
func (c *Catalogue) Lookup(host string) *Service {
	h := identity.NormalizeHost(host)
	for i := range c.Services {
		for _, sh := range c.Services[i].Hosts {
			if sh == h {
				return &c.Services[i]
			}
		}
	}
	return nil
}
