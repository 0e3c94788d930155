package checkapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// TestOneCredentialPerRequest: /v1/check and /v1/delegations read an
// agent's credentials as every enforcement point does. Two Authorization
// headers (or two tokens in one, as Envoy joins them) are a 400, not a
// decision on the first one; the same holds for X-MeshGuard-Delegation.
func TestOneCredentialPerRequest(t *testing.T) {
	e := newEnv(t)
	mail := e.agent(t, "emailer", trust.Verified, "emailer")
	other := e.agent(t, "other", trust.Verified, "emailer")
	tests := []struct {
		name    string
		path    string
		body    string
		headers [][2]string
		message string
	}{
		{"two authorization headers", "/v1/check", `{"action":"read:x"}`,
			[][2]string{{"Authorization", "Bearer " + mail.Token}, {"Authorization", "Bearer " + other.Token}}, "authorization appears more than once"},
		{"two tokens in one header", "/v1/check", `{"action":"read:x"}`,
			[][2]string{{"Authorization", "Bearer " + mail.Token + ", Bearer " + other.Token}}, "more than one value"},
		{"two delegation headers", "/v1/check", `{"action":"read:x"}`,
			[][2]string{{"Authorization", "Bearer " + mail.Token}, {"X-MeshGuard-Delegation", "a.b.c"}, {"X-MeshGuard-Delegation", "d.e.f"}}, "x-meshguard-delegation appears more than once"},
		{"two authorization headers asking for a delegation", "/v1/delegations", `{"delegate":"other","actions":["read:*"]}`,
			[][2]string{{"Authorization", "Bearer " + mail.Token}, {"Authorization", "Bearer " + other.Token}}, "authorization appears more than once"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for _, kv := range tc.headers {
				req.Header.Add(kv[0], kv[1])
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var body struct{ Error, Message string }
			if err := json.Unmarshal(raw, &body); err != nil || resp.StatusCode != http.StatusBadRequest || body.Error != "bad_request" || !strings.Contains(body.Message, tc.message) {
				t.Fatalf("%d %s, want 400 bad_request saying %q", resp.StatusCode, raw, tc.message)
			}
		})
	}
}
