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
