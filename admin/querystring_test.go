package admin_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestQueryStringsThatDoNotParse: URL.Query silently skips a pair it
// cannot read, so `?tag=%zz` used to list every agent, and `?file=%zz`
// took the default label. Every admin endpoint with query parameters
// refuses such a string, and a parameter given twice.
func TestQueryStringsThatDoNotParse(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, method, path, body, want string
	}{
		{"agents: a bad escape", http.MethodGet, "/admin/agents?tag=%zz", "", "does not parse"},
		{"agents: a semicolon", http.MethodGet, "/admin/agents?limit=5;tag=x", "", "does not parse"},
		{"agents: a filter twice", http.MethodGet, "/admin/agents?tag=a&tag=b", "", "more than once"},
		{"agents: an unknown parameter", http.MethodGet, "/admin/agents?tier=trusted", "", `unknown query parameter "tier"`},
		{"a policy: a bad escape", http.MethodGet, "/admin/policies/x?format=%zz", "", "does not parse"},
		{"a policy: a format twice", http.MethodGet, "/admin/policies/x?format=yaml&format=json", "", "more than once"},
		{"a policy: an unknown format", http.MethodGet, "/admin/policies/x?format=xml", "", "expected json or yaml"},
		{"policies: a bad escape", http.MethodPost, "/admin/policies/validate?file=%zz", "name: x\n", "does not parse"},
		{"policies: a label twice", http.MethodPost, "/admin/policies/validate?file=a.yaml&file=b.yaml", "name: x\n", "more than once"},
		{"audit: a bad escape", http.MethodGet, "/admin/audit?agent=%zz", "", "does not parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := e.raw(t, tc.method, tc.path, strings.NewReader(tc.body), adminHeaders(map[string]string{"Content-Type": "application/yaml"}))
			if b := errorBody(t, body); status != http.StatusBadRequest || !strings.Contains(b.Message, tc.want) {
				t.Fatalf("%d %s, want 400 mentioning %q", status, body, tc.want)
			}
		})
	}
}
