package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, client.ExitOK},
		{"network", errors.Join(errors.New("x"), client.ErrNetwork), client.ExitNetwork},
		{"401", &client.APIError{Status: 401, Code: "unauthorized"}, client.ExitAuth},
		{"agent token on the admin API", &client.APIError{Status: 403, Code: "forbidden", Reason: api.ReasonAdminTokenRequired}, client.ExitAuth},
		{"policy denial", &client.APIError{Status: 403, Code: "forbidden", Reason: "rule_deny"}, client.ExitDenied},
		{"rate limited", &client.APIError{Status: 429, Code: "rate_limited"}, client.ExitDenied},
		{"bad request", &client.APIError{Status: 400, Code: "bad_request"}, client.ExitUsage},
		{"too large", &client.APIError{Status: 413}, client.ExitUsage},
		{"not found", &client.APIError{Status: 404}, client.ExitFailure},
		{"conflict", &client.APIError{Status: 409}, client.ExitFailure},
		{"unavailable", &client.APIError{Status: 503}, client.ExitFailure},
		{"anything else", errors.New("boom"), client.ExitFailure},
	}
	for _, tc := range tests {
		if got := client.ExitCode(tc.err); got != tc.want {
			t.Errorf("%s: ExitCode = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestNetworkErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c, err := client.New(client.Config{BaseURL: url, AdminToken: "secret-admin-token", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListAgents(t.Context(), client.AgentFilter{})
	if !errors.Is(err, client.ErrNetwork) || client.ExitCode(err) != client.ExitNetwork {
		t.Fatalf("error = %v, want ErrNetwork", err)
	}
	if strings.Contains(err.Error(), "secret-admin-token") {
		t.Fatal("the admin token is in the error")
	}
}

func TestNewChecksBaseURL(t *testing.T) {
	for _, u := range []string{"ftp://x", "http://", "http://u:p@host", "http://host/?q=1", "::"} {
		if _, err := client.New(client.Config{BaseURL: u}); err == nil {
			t.Errorf("New(%q) accepted it", u)
		}
	}
	if _, err := client.New(client.Config{}); err != nil {
		t.Errorf("the default base URL: %v", err)
	}
}

// TestErrorsAndPrefix: a path prefix is kept, error bodies (JSON or not)
// become *APIError, and redirects are not followed (they would carry the
// admin token elsewhere).
func TestErrorsAndPrefix(t *testing.T) {
	var gotToken, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotToken, gotPath = r.Header.Get("X-Admin-Token"), r.URL.Path
		switch r.URL.Path {
		case "/mg/admin/agents/a%2Fb", "/mg/admin/agents/a/b":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"bad_request","message":"no","errors":[{"file":"f.yaml","line":3,"field":"name","message":"bad"}]}`))
		case "/mg/admin/policies":
			http.Redirect(w, r, "http://elsewhere.example/steal", http.StatusFound)
		default:
			http.Error(w, "gateway timeout from a proxy", http.StatusGatewayTimeout)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{BaseURL: srv.URL + "/mg/", AdminToken: "tok-tok-tok-tok-tok"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetAgent(t.Context(), "a/b")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != "bad_request" || len(ae.Errors) != 1 || ae.Errors[0].String() != "f.yaml:3: name: bad" {
		t.Fatalf("error = %#v", err)
	}
	if gotToken != "tok-tok-tok-tok-tok" || gotPath != "/mg/admin/agents/a/b" {
		t.Fatalf("token %q path %q", gotToken, gotPath)
	}
	_, err = c.ListPolicies(t.Context())
	if !errors.As(err, &ae) || ae.Status != http.StatusFound {
		t.Fatalf("redirect: %v", err)
	}
	err = c.Health(t.Context())
	if !errors.As(err, &ae) || ae.Status != 504 || ae.Code != "gateway_timeout" || !strings.Contains(ae.Message, "proxy") {
		t.Fatalf("text error: %#v", err)
	}
}
