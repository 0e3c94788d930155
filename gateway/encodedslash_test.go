package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// TestEncodedSlashesAreRefusedWhereverTheyStand: the gateway refuses an
// encoded "/" or "\" (%2F, %5C, in either case) in the path itself, with
// a 400 naming them (docs/gateway.md, "Path"), wherever the escape stands
// — as the path's last three bytes too — before the engine is asked.
// (%5C in upper case is Go's own spelling of "\", which the check of
// decoded characters refuses instead.)
func TestEncodedSlashesAreRefusedWhereverTheyStand(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	for _, path := range []string{"/proxy/%2Fa", "/proxy/a%2Fb", "/proxy/a%2F", "/proxy/a%2f", "/proxy/a%5c"} {
		t.Run(path, func(t *testing.T) {
			res := raw(t, gw, "GET "+path+" HTTP/1.1\r\nHost: gw\r\n"+bearer(tok)+"\r\n\r\n")
			msg, _ := res.json(t)["message"].(string)
			if res.Status != http.StatusBadRequest || !strings.Contains(msg, "(%2F, %5C)") {
				t.Fatalf("status %d, message %q; want 400 naming %%2F and %%5C", res.Status, msg)
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("upstream received %d requests", n)
	}
}
