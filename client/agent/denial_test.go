package agent_test

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/meshguard/meshguard/client/agent"
)

// TestDenialFrom: a gateway's (or Envoy's ext_authz) refusal is read as
// the SDK's error; an upstream's own error, an audit-mode pass and an
// allow are not MeshGuard's refusal. The body stays readable.
func TestDenialFrom(t *testing.T) {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name    string
		status  int
		headers map[string]string
		body    string
		want    []error // nil: DenialFrom returns nil
		check   func(*agent.Error) bool
	}{
		{"a policy's denial", 403, map[string]string{"X-MeshGuard-Decision": "deny", "X-MeshGuard-Trace-Id": trace},
			`{"error":"forbidden","reason":"delegation_ceiling","action":"write:notes/x","trace_id":"` + trace + `"}`,
			[]error{agent.ErrDenied}, func(e *agent.Error) bool {
				return e.Reason == "delegation_ceiling" && e.TraceID == trace && e.Status == 403
			}},
		{"an approval required, named by the header", 403, map[string]string{"X-MeshGuard-Decision": "deny", "X-MeshGuard-Approval": "apr_9"},
			`{"error":"forbidden","reason":"approval_required","approval_url":"/v1/approvals/apr_9"}`,
			[]error{agent.ErrApprovalRequired, agent.ErrDenied}, func(e *agent.Error) bool { return e.ApprovalID == "apr_9" && e.ApprovalURL == "/v1/approvals/apr_9" }},
		{"an approval required, named by the body only", 403, map[string]string{"X-MeshGuard-Decision": "deny"},
			`{"error":"forbidden","reason":"approval_required","approval_id":"apr_8"}`,
			[]error{agent.ErrApprovalRequired}, func(e *agent.Error) bool { return e.ApprovalID == "apr_8" }},
		{"a revoked caller", 401, map[string]string{"X-MeshGuard-Decision": "deny"}, `{"error":"unauthorized","reason":"agent_revoked"}`,
			[]error{agent.ErrUnauthorized}, func(e *agent.Error) bool { return e.Reason == "agent_revoked" }},
		{"a rate limit", 429, map[string]string{"X-MeshGuard-Decision": "deny", "Retry-After": "7"}, `{"error":"rate_limited","reason":"rate_limited"}`,
			[]error{agent.ErrRateLimited}, func(e *agent.Error) bool { return e.RetryAfter == 7*time.Second }},
		{"a deny body that is not JSON is still a denial", 403, map[string]string{"X-MeshGuard-Decision": "deny"}, `nope`,
			[]error{agent.ErrDenied}, nil},
		{"an upstream's own 403", 403, nil, `{"error":"forbidden","reason":"rule_deny"}`, nil, nil},
		{"an allowed request", 200, map[string]string{"X-MeshGuard-Decision": "allow"}, `{}`, nil, nil},
		{"audit mode lets a deny through", 404, map[string]string{"X-MeshGuard-Decision": "deny", "X-MeshGuard-Mode": "audit"}, `{}`, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, _ := answering(t, tc.status, tc.headers, tc.body)
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			err = agent.DenialFrom(resp)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("DenialFrom = %v, want nil", err)
				}
			} else {
				for _, w := range tc.want {
					if !errors.Is(err, w) {
						t.Errorf("DenialFrom = %v, want %v", err, w)
					}
				}
				var e *agent.Error
				if errors.As(err, &e) && tc.check != nil && !tc.check(e) {
					t.Errorf("error %+v", e)
				}
			}
			if rest, _ := io.ReadAll(resp.Body); string(rest) != tc.body {
				t.Errorf("body after DenialFrom = %q, want %q", rest, tc.body)
			}
		})
	}
	if agent.DenialFrom(nil) != nil {
		t.Error("DenialFrom(nil) is not nil")
	}
}
