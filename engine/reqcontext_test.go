package engine_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestContextIsWhatTheRequestCarries: where the engine sees the real
// request, context conditions read its headers and query parameters — the
// values the upstream receives — and nothing the caller asserts beside
// them. At POST /v1/check the caller's context is the context.
func TestContextIsWhatTheRequestCarries(t *testing.T) {
	f := enginetest.New(t, `
name: tenants
rules:
  - name: prod-only-for-ops
    effect: deny
    actions: ["write:*"]
    conditions: {context: {header.x-env: {not_matches: "staging"}}}
    reason: writes go to staging
  - name: small-pages
    effect: deny
    actions: ["read:*"]
    conditions: {context: {query.limit: {gt: 100}}}
    reason: at most 100 a page
  - {name: rest, effect: allow, actions: ["*"]}
`, enginetest.Options{})
	_, tok := f.Agent(t, "worker", 1, nil)
	tests := []struct {
		name    string
		r       engine.Request
		status  int
		rule    string
		context map[string]any
	}{
		{"the header a policy reads", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-env": "staging", "other": "1"}},
			200, "rest", map[string]any{"header.x-env": "staging"}},
		{"header names in any case", engine.Request{Method: "POST", Path: "/x", Headers: edge.MultiHeaders{"X-Env": {"staging"}}},
			200, "rest", map[string]any{"header.x-env": "staging"}},
		{"another value", engine.Request{Method: "POST", Path: "/x", Headers: edge.PairHeaders{{"X-ENV", "prod"}}},
			403, "prod-only-for-ops", map[string]any{"header.x-env": "prod"}},
		{"an absent header: the deny rule holds", engine.Request{Method: "POST", Path: "/x"}, 403, "prod-only-for-ops", nil},
		{"X-MeshGuard-Context is not context", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-meshguard-context": `{"header.x-env":"staging"}`}},
			403, "prod-only-for-ops", nil},
		{"a repeated header", engine.Request{Method: "POST", Path: "/x", Headers: edge.PairHeaders{{"x-env", "staging"}, {"x-env", "prod"}}}, 400, "", nil},
		{"a header Envoy joined", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-env": "staging,prod"}}, 400, "", nil},
		{"a number in the query", engine.Request{Method: "GET", Path: "/items?limit=500"}, 403, "small-pages", map[string]any{"query.limit": "500"}},
		{"a small number", engine.Request{Method: "GET", Path: "/items?limit=5&x=y"}, 200, "rest", map[string]any{"query.limit": "5"}},
		{"not a number", engine.Request{Method: "GET", Path: "/items?limit=0x500"}, 200, "rest", map[string]any{"query.limit": "0x500"}},
		{"a huge header value", engine.Request{Method: "POST", Path: "/x", Headers: edge.MapHeaders{"x-env": strings.Repeat("s", engine.MaxContextLen)}}, 400, "", nil},
		{"invalid UTF-8 in the query", engine.Request{Method: "GET", Path: "/items?limit=%FF"}, 400, "", nil},
		{"the API's context, as given", engine.Request{Source: engine.SourceAPI, Action: "write:x", Context: map[string]any{"header.x-env": "staging"},
			Headers: edge.MapHeaders{"x-env": "prod"}}, 200, "rest", map[string]any{"header.x-env": "staging"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Token = tok
			d := check(t, f.Engine, tc.r)
			if d.Status != tc.status || d.Rule != tc.rule {
				t.Fatalf("got %d %s %q (%s), want %d %q", d.Status, d.Reason, d.Rule, d.Message, tc.status, tc.rule)
			}
			if tc.status == 400 && d.Reason != engine.ReasonBadRequest {
				t.Fatalf("reason %s", d.Reason)
			}
			if tc.status != 400 && !reflect.DeepEqual(d.Context, tc.context) {
				t.Fatalf("context %v, want %v", d.Context, tc.context)
			}
		})
	}
	if got := f.Policies.Current().RequestKeys(); !reflect.DeepEqual(got, []string{"header.x-env", "query.limit"}) {
		t.Fatalf("request keys %q", got)
	}
}
