package extauthz

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestGRPCPseudoHeaderFallbacks: a CheckRequest's method, host and path
// come from attributes.request.http, and from the :method, :authority
// (then host) and :path headers only when a field is empty
// (docs/enforcement.md, "What MeshGuard reads from a CheckRequest"). A
// header never overrides a field Envoy filled in.
func TestGRPCPseudoHeaderFallbacks(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	client := startGRPC(t, rec, testLog(t, nil))
	tests := []struct {
		name               string
		method, host, path string // the attributes' fields
		headers            map[string]string
		want               [3]string // method, host, path the engine is asked about
	}{
		{"fields win over the headers", "GET", "crm.internal", "/contacts",
			map[string]string{":method": "DELETE", ":authority": "a.internal", "host": "h.internal", ":path": "/other"},
			[3]string{"GET", "crm.internal", "/contacts"}},
		{"empty fields, every header", "", "", "",
			map[string]string{":method": "GET", ":authority": "a.internal", "host": "h.internal", ":path": "/contacts"},
			[3]string{"GET", "a.internal", "/contacts"}},
		{"empty host, no :authority", "GET", "", "/contacts",
			map[string]string{"host": "h.internal"},
			[3]string{"GET", "h.internal", "/contacts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := withAuth(map[string]string{}, m.mailT)
			for k, v := range tc.headers {
				h[k] = v
			}
			req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Method: tc.method, Host: tc.host, Path: tc.path, Headers: h},
			}}}
			_, before := rec.last()
			allowed(t, check(t, client, req))
			r, after := rec.last()
			if after != before+1 {
				t.Fatalf("the engine was asked %d times, want once", after-before)
			}
			if got := [3]string{r.Method, r.Host, r.Path}; got != tc.want {
				t.Fatalf("engine asked about %q, want %q", got, tc.want)
			}
		})
	}
}
