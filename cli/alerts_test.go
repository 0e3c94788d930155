package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/api"
)

// liveAlerts is alerting as a server shows it, over real providers.
type liveAlerts struct{ providers []alert.Provider }

func (l *liveAlerts) Status(context.Context) (api.AlertsStatus, error) {
	st := api.AlertsStatus{Triggers: []string{"deny", "rate_limit"}, RateLimit: 10, Pending: map[string]int{"webhook": 2}}
	for _, p := range l.providers {
		st.Providers = append(st.Providers, api.AlertProvider{Name: p.Name(), Target: "http://receiver"})
	}
	return st, nil
}

func (l *liveAlerts) Test(ctx context.Context) []api.AlertTestResult {
	a := alert.ForTest(time.Now(), alert.Origin{})
	var out []api.AlertTestResult
	for _, p := range l.providers {
		err := p.Send(ctx, &a)
		r := api.AlertTestResult{Provider: p.Name(), Delivered: err == nil}
		if err != nil {
			r.Error = err.Error()
		}
		out = append(out, r)
	}
	return out
}

// TestAlertsCommands: config, triggers and providers print what the server
// reports; test reports each provider and exits 1 when one failed.
func TestAlertsCommands(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(ok.Close)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(down.Close)
	l := newLiveWith(t, func(c *admin.Config) {
		c.Alerts = &liveAlerts{providers: []alert.Provider{&alert.Webhook{URL: ok.URL}, &alert.Slack{URL: down.URL}}}
	})
	out := l.must(t, "alerts", "config")
	for _, want := range []string{"deny, rate_limit", "10 a minute", "webhook", "slack", "PENDING"} {
		if !strings.Contains(out, want) {
			t.Errorf("alerts config lacks %q:\n%s", want, out)
		}
	}
	if out := l.must(t, "alerts", "triggers"); !strings.Contains(out, "error") || !strings.Contains(out, "off") {
		t.Errorf("alerts triggers:\n%s", out)
	}
	if out := l.must(t, "alerts", "providers"); !strings.Contains(out, "slack") {
		t.Errorf("alerts providers:\n%s", out)
	}
	code, out, errOut := l.mg(t, "alerts", "test")
	if code != 1 || !strings.Contains(out, "✓ webhook: delivered") || !strings.Contains(out, "✗ slack:") || !strings.Contains(errOut, "1 of 2") {
		t.Fatalf("alerts test: exit %d\n%s\n%s", code, out, errOut)
	}
}
