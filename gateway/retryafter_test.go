package gateway_test

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/trust"
)

// TestPerIPRetryAfterRoundsUp: a client over RATE_LIMIT_RPM gets 429 with
// Retry-After and retry_after in whole seconds (docs/gateway.md), the
// limiter's wait rounded up — so a client that waits that long is not
// refused again — and not one second more when the wait is whole.
func TestPerIPRetryAfterRoundsUp(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	tests := []struct {
		name  string
		now   time.Time
		whole bool // whether the limiter's wait is a whole number of seconds
	}{
		{"a whole wait", time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), true},
		{"a fractional wait", time.Date(2026, 3, 2, 10, 0, 0, 250_000_000, time.UTC), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim := ratelimit.NewMemory(func() time.Time { return tc.now }, 0)
			gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL), Limiter: lim, RPM: 1})
			c := newClient(t)
			if res := call(t, c, "GET", gw+"/proxy/docs", bearer(tok)); res.Status != http.StatusOK {
				t.Fatalf("first request: %d %s", res.Status, res.Body)
			}
			res := call(t, c, "GET", gw+"/proxy/docs", bearer(tok))
			if res.Status != http.StatusTooManyRequests {
				t.Fatalf("second request: %d %s", res.Status, res.Body)
			}
			// The limiter's own wait for this client, at the same instant
			// (a refused request is not counted).
			r, err := lim.Allow(context.Background(), "gateway/ip/127.0.0.1", 1, time.Minute)
			if err != nil || r.Allowed || r.RetryAfter <= 0 || (r.RetryAfter%time.Second == 0) != tc.whole {
				t.Fatalf("the limiter's answer %+v, %v", r, err)
			}
			want := int(math.Ceil(r.RetryAfter.Seconds()))
			if got := res.Header.Get("Retry-After"); got != strconv.Itoa(want) {
				t.Fatalf("Retry-After %q for a wait of %s, want %d", got, r.RetryAfter, want)
			}
			if got := res.json(t)["retry_after"]; got != float64(want) {
				t.Fatalf("retry_after %v for a wait of %s, want %d", got, r.RetryAfter, want)
			}
		})
	}
}
