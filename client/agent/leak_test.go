package agent_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client/agent"
)

const secretDelegation = "eyJ.secret-delegation-token.sig"

// TestFormattingNamesNoToken: an Agent printed or logged every way Go
// prints a value shows neither the agent's token nor its delegation token.
func TestFormattingNamesNoToken(t *testing.T) {
	a, err := agent.New("http://127.0.0.1:1", secretToken)
	if err != nil {
		t.Fatal(err)
	}
	if a, err = a.ActingFor(secretDelegation); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("calling", "agent", a, "value", *a)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("calling", "agent", a, "value", *a)
	tests := []struct{ name, text string }{
		{"%v", fmt.Sprintf("%v", a)},
		{"%+v", fmt.Sprintf("%+v", a)},
		{"%#v", fmt.Sprintf("%#v", a)},
		{"Sprint", fmt.Sprint(a)},
		{"%v of the value", fmt.Sprintf("%v", *a)},
		{"%+v of the value", fmt.Sprintf("%+v", *a)},
		{"%#v of the value", fmt.Sprintf("%#v", *a)},
		{"slog", logged.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, secret := range []string{secretToken, secretDelegation} {
				if strings.Contains(tt.text, secret) {
					t.Errorf("%s shows a token: %s", tt.name, tt.text)
				}
			}
			if !strings.Contains(tt.text, "127.0.0.1:1") {
				t.Errorf("%s does not name MeshGuard's address: %s", tt.name, tt.text)
			}
		})
	}
}

// TestDelegationFormattingNamesNoToken: a minted delegation printed or
// logged shows its chain, not its token (as the Python and TypeScript
// SDKs' Delegation do).
func TestDelegationFormattingNamesNoToken(t *testing.T) {
	d := api.DelegationToken{Token: secretDelegation, ExpiresAt: time.Unix(1e9, 0), Chain: []string{"agent_root", "agent_leaf"}, Scope: []string{"read:*"}, MaxChain: 2}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("minted", "delegation", d, "pointer", &d)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("minted", "delegation", d, "pointer", &d)
	for _, tt := range []struct{ name, text string }{
		{"%v", fmt.Sprintf("%v", d)}, {"%+v", fmt.Sprintf("%+v", d)}, {"%#v", fmt.Sprintf("%#v", d)},
		{"%v of a pointer", fmt.Sprintf("%v", &d)}, {"slog", logged.String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.text, secretDelegation) {
				t.Errorf("%s shows the token: %s", tt.name, tt.text)
			}
			if !strings.Contains(tt.text, "agent_leaf") {
				t.Errorf("%s does not show the chain: %s", tt.name, tt.text)
			}
		})
	}
}

// TestRetryAfterBeyondReason: a Retry-After too large for a time.Duration
// is a long wait returned to the caller, not an overflow into a negative
// wait retried at once.
func TestRetryAfterBeyondReason(t *testing.T) {
	body := `{"decision":"deny","allowed":false,"status":429,"reason":"rate_limited","error":"rate_limited"}`
	for _, ra := range []string{"9999999999", "99999999999999999999", "9223372037"} {
		t.Run(ra, func(t *testing.T) {
			url, hits := answering(t, 429, map[string]string{"Retry-After": ra}, body)
			a, err := agent.New(url, secretToken, agent.WithRetries(3, time.Second))
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Check(t.Context(), "read:papers", "", nil)
			var e *agent.Error
			if !errors.As(err, &e) || e.Kind != agent.KindRateLimited {
				t.Fatalf("error %v, want rate limited", err)
			}
			if e.RetryAfter < time.Hour {
				t.Errorf("RetryAfter = %v, want the long wait MeshGuard asked for", e.RetryAfter)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("%d requests, want 1: a wait beyond the bound is the caller's", n)
			}
		})
	}
}

// TestTransportKeepsTheTokenInTheMesh: the Transport gives the agent's
// headers to MeshGuard's host and the WithMeshHosts ones only; a request
// anywhere else (a URL the agent was handed) leaves without them.
func TestTransportKeepsTheTokenInTheMesh(t *testing.T) {
	type seen struct{ auth, delegation, traceparent string }
	listen := func() (string, chan seen) {
		got := make(chan seen, 4)
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			got <- seen{r.Header.Get("Authorization"), r.Header.Get("X-MeshGuard-Delegation"), r.Header.Get("traceparent")}
		}))
		t.Cleanup(srv.Close)
		return srv.URL, got
	}
	meshguardURL, atMeshGuard := listen()
	serviceURL, atService := listen()
	elsewhereURL, atElsewhere := listen()
	a, err := agent.New(meshguardURL, secretToken, agent.WithMeshHosts(strings.TrimPrefix(serviceURL, "http://")))
	if err != nil {
		t.Fatal(err)
	}
	if a, err = a.ActingFor(secretDelegation); err != nil {
		t.Fatal(err)
	}
	hc := a.HTTPClient(nil)
	tests := []struct {
		name   string
		url    string
		got    chan seen
		tokens bool
	}{
		{"MeshGuard's gateway", meshguardURL + "/proxy/papers", atMeshGuard, true},
		{"a mesh host", serviceURL + "/papers", atService, true},
		{"another host", elsewhereURL + "/collect", atElsewhere, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := hc.Get(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			s := <-tt.got
			if tt.tokens && (s.auth != "Bearer "+secretToken || s.delegation != secretDelegation || s.traceparent == "") {
				t.Errorf("a request into the mesh without the agent's headers (authorization %t, delegation %t, traceparent %q)", s.auth != "", s.delegation != "", s.traceparent)
			}
			if !tt.tokens && (s.auth != "" || s.delegation != "") {
				t.Errorf("a request to another host carried the agent's credentials (authorization %t, delegation %t)", s.auth != "", s.delegation != "")
			}
		})
	}
	if _, err := agent.New(meshguardURL, secretToken, agent.WithMeshHosts("ftp://x")); err == nil {
		t.Error("WithMeshHosts(ftp://x): no error")
	}
}
