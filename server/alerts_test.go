package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/config"
)

// TestDenialRaisesAnAlert: with ALERT_ON=deny, a webhook and a Slack
// webhook, a denial through /v1/check reaches both receivers, the webhook
// signed and carrying the decision's trace id; an allow raises nothing.
func TestDenialRaisesAnAlert(t *testing.T) {
	var mu sync.Mutex
	got := map[string][][]byte{}
	recv := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if name == "webhook" && !alert.Verify([]byte("hook-secret"), b, r.Header.Get(alert.HeaderSignature)) {
				w.WriteHeader(401)
				return
			}
			mu.Lock()
			got[name] = append(got[name], b)
			mu.Unlock()
		}))
		t.Cleanup(s.Close)
		return s
	}
	hook, slack := recv("webhook"), recv("slack")
	r := start(t, func(c *config.Config) {
		c.Alerts.On, _ = alert.ParseTriggers("deny")
		c.Alerts.WebhookURL, c.Alerts.WebhookSecret, c.Alerts.SlackWebhook = hook.URL, "hook-secret", slack.URL
		c.Alerts.RateLimit, c.Alerts.Instance = 10, "mg-test"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	agent, err := r.admin.CreateAgent(ctx, api.CreateAgentRequest{Name: "reader-1", TrustTier: "verified", Tags: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	as := r.admin.WithAgentToken(agent.Token)
	if d, err := as.Check(ctx, api.CheckRequest{Action: "read:docs"}); err != nil || !d.Allowed {
		t.Fatalf("allowed read: %+v %v", d, err)
	}
	deniedAt := time.Now()
	denied, err := as.Check(ctx, api.CheckRequest{Action: "write:docs"})
	if err == nil || denied.Allowed {
		t.Fatalf("a write: %+v %v", denied, err)
	}
	eventually(t, "the alert at both receivers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["webhook"]) >= 1 && len(got["slack"]) >= 1
	})
	t.Logf("the alert reached both receivers %v after the denial", time.Since(deniedAt))
	mu.Lock()
	defer mu.Unlock()
	var a alert.Alert
	if err := json.Unmarshal(got["webhook"][0], &a); err != nil {
		t.Fatal(err)
	}
	if len(got["webhook"]) != 1 || a.Trigger != alert.TriggerDeny || a.Entry.Action != "write:docs" || a.Entry.AgentName != "reader-1" ||
		a.Entry.TraceID == "" || a.Entry.TraceID != denied.TraceID || a.Instance != "mg-test" {
		t.Fatalf("%d alerts; the first %+v (the denial's trace %s)", len(got["webhook"]), a, denied.TraceID)
	}
	mu.Unlock()

	// The admin API shows the configuration without secrets, and a test
	// alert goes through each provider at once.
	st, err := r.admin.Alerts(ctx)
	if err != nil || strings.Join(st.Triggers, ",") != "deny" || len(st.Providers) != 2 || st.RateLimit != 10 {
		t.Fatalf("status %+v %v", st, err)
	}
	for _, p := range st.Providers {
		if !strings.HasPrefix(p.Target, "http://127.0.0.1:") || strings.Contains(strings.TrimPrefix(p.Target, "http://"), "/") {
			t.Errorf("%s's target %q: want the host alone (paths may hold tokens)", p.Name, p.Target)
		}
	}
	res, err := r.admin.TestAlerts(ctx)
	if err != nil || len(res) != 2 || !res[0].Delivered || !res[1].Delivered {
		t.Fatalf("test: %+v %v", res, err)
	}
	mu.Lock()
	var test alert.Alert
	if err := json.Unmarshal(got["webhook"][len(got["webhook"])-1], &test); err != nil || test.Trigger != alert.TriggerTest || test.Severity != alert.SeverityInfo {
		t.Fatalf("the test alert %+v %v", test, err)
	}
}

// TestAlertsSurviveARestart: an alert raised while its receiver is down
// waits in the outbox through a restart, and the restarted MeshGuard
// delivers it once the receiver is up.
func TestAlertsSurviveARestart(t *testing.T) {
	var up atomic.Bool
	var mu sync.Mutex
	var bodies [][]byte
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(503)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	cfg := configWith(t, func(c *config.Config) {
		c.Alerts.On, _ = alert.ParseTriggers("deny")
		c.Alerts.WebhookURL, c.Alerts.RateLimit = recv.URL, 10
		c.AdminToken = "restart-test-admin-token-0123456789"
	})
	first := run(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agent, err := first.admin.CreateAgent(ctx, api.CreateAgentRequest{Name: "reader-2", TrustTier: "verified", Tags: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := first.admin.WithAgentToken(agent.Token).Check(ctx, api.CheckRequest{Action: "write:docs"}); d.Allowed {
		t.Fatal("the write was allowed")
	}
	eventually(t, "the alert in the outbox", func() bool {
		st, err := first.admin.Alerts(ctx)
		return err == nil && st.Pending["webhook"] == 1
	})
	first.stop(t)

	up.Store(true)
	second := run(t, cfg)
	eventually(t, "the alert delivered after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(bodies) == 1
	})
	var a alert.Alert
	if err := json.Unmarshal(bodies[0], &a); err != nil || a.Entry.AgentName != "reader-2" {
		t.Fatalf("delivered %+v %v", a, err)
	}
	eventually(t, "an empty outbox", func() bool {
		st, err := second.admin.Alerts(ctx)
		return err == nil && st.Pending["webhook"] == 0
	})
}
