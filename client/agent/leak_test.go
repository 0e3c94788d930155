package agent_test

import (
	"bytes"
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
		{"%s", fmt.Sprintf("%s", a)},
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
