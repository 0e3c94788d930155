package catalog

import (
	"sort"
	"strings"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/identity"
)

// OrderedRoutes returns s's routes in the order a proxy tries them: longer
// paths first, so a prefix never hides a more specific route; equal
// lengths keep the order given. MeshGuard's xDS writes Envoy's routes in
// this order and the wasm filter matches in it, so both find the same
// route for a request.
func (s *Service) OrderedRoutes() []Route {
	rs := append([]Route(nil), s.Routes...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].before(&rs[j]) })
	return rs
}

// before is the order of OrderedRoutes: r is tried before o when its path,
// without the '*', is longer.
func (r *Route) before(o *Route) bool {
	return len(strings.TrimSuffix(r.Path, "*")) > len(strings.TrimSuffix(o.Path, "*"))
}

// Route returns the route a request with this method and path (its query
// already removed) takes: the first of OrderedRoutes that Matches, found
// without sorting; nil for none (the service's default route, no action).
func (s *Service) Route(method, path string) *Route {
	var best *Route
	for i := range s.Routes {
		r := &s.Routes[i]
		if r.Matches(method, path) && (best == nil || r.before(best)) {
			best = r
		}
	}
	return best
}

// Prepare sets on r what a proxy configured by MeshGuard's xDS passes to
// ext_authz for a request to s (authzContext in package xds): the
// service's minimum tier; its protocol and name, when it declares one; and
// the action of the route r takes, which wins over the protocol. The wasm
// filter (filterdecider) and the gateway (PROXY_SERVICES) call it, so
// every enforcement point reads the catalogue alike. r.Method and r.Path
// must be set.
func (s *Service) Prepare(r *engine.Request) {
	r.MinTier = s.MinTier
	if s.Protocol != "" {
		// Every route of the service declares it, as MeshGuard's xDS
		// puts it on each.
		r.RouteProtocol, r.RouteService = s.Protocol, s.Name
	}
	path, _, _ := strings.Cut(r.Path, "?")
	if rt := s.Route(r.Method, path); rt != nil {
		r.RouteAction = rt.Action
	}
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
