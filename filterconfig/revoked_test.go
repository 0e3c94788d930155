package filterconfig_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/identity"
)

// TestRevokedTokensInTheConfiguration: MeshGuard's revoked tokens are in
// the configuration it generates, and a list the filter could not hold to
// is refused whole.
func TestRevokedTokensInTheConfiguration(t *testing.T) {
	env := filtertest.New(t)
	c, err := filterconfig.Parse(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	live := env.F.Revoked.Live()
	if len(live) != 1 || len(c.RevokedTokens) != 1 || c.RevokedTokens[0].JTI != live[0].JTI || c.RevokedTokens[0].Exp != live[0].ExpiresAt.Unix() {
		t.Fatalf("the configuration carries %+v; MeshGuard's list is %+v", c.RevokedTokens, live)
	}

	tooMany := make([]any, identity.MaxRevokedTokens+1)
	for i := range tooMany {
		tooMany[i] = map[string]any{"jti": "j", "exp": 1}
	}
	for _, tt := range []struct {
		name  string
		value any
		want  string
	}{
		{"a jti with a space", []any{map[string]any{"jti": "a b", "exp": 1}}, "revokedTokens[0]"},
		{"an empty jti", []any{map[string]any{"jti": "", "exp": 1}}, "revokedTokens[0]"},
		{"no exp", []any{map[string]any{"jti": "a"}}, "revokedTokens[0]"},
		{"an unknown member", []any{map[string]any{"jti": "a", "exp": 1, "token": "eyJ"}}, `unknown field "token"`},
		{"too many", tooMany, "revokedTokens: more than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := filterconfig.Parse(edit(t, env.Config(), "revokedTokens", tt.value))
			if !errors.Is(err, filterconfig.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
	source := []byte(`{"version":1,"source":{"cluster":"mg","token":"t"},"revokedTokens":[{"jti":"a","exp":1}]}`)
	if _, err := filterconfig.Parse(source); !errors.Is(err, filterconfig.ErrInvalid) {
		t.Errorf("a source configuration with revoked tokens: %v, want ErrInvalid", err)
	}
}
