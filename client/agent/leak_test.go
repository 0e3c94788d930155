package agent_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
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
