package catalog

import "testing"

func TestLookupAndMatch(t *testing.T) {
	c, err := New([]Service{
		{Name: "orders", Hosts: []string{"Orders.Mesh"}, Port: 80, Endpoints: []string{"10.0.0.1:80"}, Routes: []Route{
			{Path: "/orders/*", Action: "read:orders"},
			{Method: "POST", Path: "/orders/new/*", Action: "write:orders"},
			{Path: "/health", Action: "read:health"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Lookup("nope.mesh") != nil {
		t.Error("an unknown host found a service")
	}
	s := c.Lookup("ORDERS.mesh:8080")
	if s == nil || s.Name != "orders" {
		t.Fatalf("Lookup with case and port = %v", s)
	}
	first := func(method, path string) string {
		for _, r := range s.OrderedRoutes() {
			if r.Matches(method, path) {
				return r.Action
			}
		}
		return ""
	}
	tests := []struct{ method, path, want string }{
		{"POST", "/orders/new/1", "write:orders"}, // the longer prefix wins though listed later
		{"GET", "/orders/new/1", "read:orders"},   // method mismatch falls to the shorter prefix
		{"GET", "/health", "read:health"},
		{"GET", "/health/x", ""},                 // exact paths are exact
		{"post", "/orders/new/1", "read:orders"}, // methods are exact, as Envoy's header match is
	}
	for _, tt := range tests {
		if got := first(tt.method, tt.path); got != tt.want {
			t.Errorf("%s %s → %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}

// TestRouteIsFirstOfOrderedRoutes: Service.Route, which the gateway and the
// wasm filter use, picks the route MeshGuard's xDS makes Envoy take (the
// first of OrderedRoutes that matches), equal lengths in the order given.
func TestRouteIsFirstOfOrderedRoutes(t *testing.T) {
	s := &Service{Routes: []Route{
		{Path: "/a/*", Action: "read:a"},
		{Method: "POST", Path: "/a/b/*", Action: "write:ab"},
		{Path: "/a/b/*", Action: "read:ab"},
		{Path: "/a/bc", Action: "read:abc"},
		{Path: "/x/*", Action: "read:x1"},
		{Path: "/x/*", Action: "read:x2"},
	}}
	tests := []struct{ name, method, path, want string }{
		{"longer prefix listed later", "POST", "/a/b/1", "write:ab"},
		{"method mismatch falls to the next of the same length", "GET", "/a/b/1", "read:ab"},
		{"exact beats a shorter prefix", "GET", "/a/bc", "read:abc"},
		{"equal lengths: the first given", "GET", "/x/1", "read:x1"},
		{"shortest prefix", "GET", "/a/z", "read:a"},
		{"no route", "GET", "/z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := ""
			for _, r := range s.OrderedRoutes() {
				if r.Matches(tt.method, tt.path) {
					want = r.Action
					break
				}
			}
			if want != tt.want {
				t.Fatalf("the table is wrong: OrderedRoutes gives %q, table says %q", want, tt.want)
			}
			got := ""
			if r := s.Route(tt.method, tt.path); r != nil {
				got = r.Action
			}
			if got != tt.want {
				t.Errorf("Route(%s %s) = %q, want %q", tt.method, tt.path, got, tt.want)
			}
		})
	}
}
