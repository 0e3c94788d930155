package filterdecider_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
)

// TestHS256TokensDefer: when MeshGuard takes HS256 tokens (whose secret
// the filter never holds), the filter asks MeshGuard about exactly the
// tokens whose header the verifier reads as HS256. A header the verifier
// refuses (a parameter it does not accept, a key spelt "ALG") is refused
// here too, locally, not handed on; without hs256 nothing defers.
func TestHS256TokensDefer(t *testing.T) {
	env := filtertest.New(t)
	payload := strings.Split(env.OrchT, ".")[1]
	tok := func(header string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + payload + ".c2lnbmF0dXJl"
	}
	tests := []struct {
		name   string
		hs256  bool
		token  string
		defers bool
		status int
	}{
		{"HS256, MeshGuard takes it", true, tok(`{"alg":"HS256","typ":"JWT"}`), true, 0},
		{"HS256 without typ", true, tok(`{"alg":"HS256"}`), true, 0},
		{"HS256, MeshGuard does not take it", false, tok(`{"alg":"HS256","typ":"JWT"}`), false, 401},
		{"an agent's own token", true, env.OrchT, false, 200},
		{"a key spelt ALG", true, tok(`{"ALG":"HS256"}`), false, 401},
		{"a crit parameter", true, tok(`{"alg":"HS256","crit":["exp"]}`), false, 401},
		{"alg twice", true, tok(`{"alg":"EdDSA","alg":"HS256"}`), false, 401},
		{"a header that is not base64url", true, "e30*." + payload + ".c2ln", false, 401},
		{"no token", true, "", false, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := filterconfig.Parse(env.Config())
			if err != nil {
				t.Fatal(err)
			}
			cfg.HS256 = tc.hs256
			local, err := filterdecider.New(cfg, filterdecider.Options{Now: func() time.Time { return filtertest.Now }})
			if err != nil {
				t.Fatal(err)
			}
			r := engine.Request{Method: "GET", Host: "docs.mesh", Path: "/docs", Token: tc.token}
			d, err := local.Check(context.Background(), &r)
			switch {
			case tc.defers && !errors.Is(err, filterdecider.ErrDefer):
				t.Fatalf("decided %d %s (%v); want a deferral to MeshGuard", d.Status, d.Message, err)
			case !tc.defers && err != nil:
				t.Fatalf("error %v; want the filter to decide", err)
			case !tc.defers && d.Status != tc.status:
				t.Fatalf("decided %d %s (%s); want %d", d.Status, d.Reason, d.Message, tc.status)
			}
		})
	}
}
