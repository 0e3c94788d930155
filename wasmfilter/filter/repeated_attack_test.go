package filter_test

import (
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
)

// TestRepeatedHeadersAreNotAllowed: the filter merges a request's headers
// only when a name comes twice (repeated). A credential or a read header
// sent twice — in other cases, with the same value, with '_' for '-' — is
// never allowed on either value, natively and compiled under wazero: the
// merged value holds a comma, or the name counts twice.
func TestRepeatedHeadersAreNotAllowed(t *testing.T) {
	env := filtertest.New(t)
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			base := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}}
			for _, tc := range []struct {
				name string
				hs   [][2]string
			}{
				{"authorization twice, the second in upper case", [][2]string{{"authorization", "Bearer " + env.MailT}, {"AUTHORIZATION", "Bearer " + env.OrchT}}},
				{"authorization twice, the same token", [][2]string{{"Authorization", "Bearer " + env.OrchT}, {"authorization", "Bearer " + env.OrchT}}},
				{"authorization split across two", [][2]string{{"authorization", "Bearer"}, {"Authorization", env.OrchT}}},
			} {
				o := e.send(append(append([][2]string(nil), base...), tc.hs...))
				if o.action == types.ActionContinue || o.local == nil || o.local.StatusCode < 400 || o.local.StatusCode > 499 {
					t.Errorf("%s: action %v, answer %+v; want a 4xx refusal", tc.name, o.action, o.local)
				}
			}
			// The same headers once each: allowed (the refusals above are
			// the repeat's, not the request's).
			o := e.send(append(append([][2]string(nil), base...), [2]string{"authorization", "Bearer " + env.OrchT}))
			if o.action != types.ActionContinue || o.local != nil {
				t.Fatalf("one authorization: action %v, answer %+v", o.action, o.local)
			}
		})
	}
}
