package server

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/config"
)

// buildAlerts returns the alert dispatcher for the ALERT_* settings, or nil
// when no provider is configured, and the providers. links signs approval
// links (nil without APPROVAL_LINK_BASE).
func (p *parts) buildAlerts(cfg *config.Config, links alert.LinkFunc, log *slog.Logger) (*alert.Dispatcher, []alert.Provider, error) {
	a := &cfg.Alerts
	var providers []alert.Provider
	if a.WebhookURL != "" {
		providers = append(providers, &alert.Webhook{URL: a.WebhookURL, Secret: []byte(a.WebhookSecret)})
	}
	if a.SlackWebhook != "" {
		providers = append(providers, &alert.Slack{URL: a.SlackWebhook})
	}
	if a.SMTPHost != "" {
		providers = append(providers, &alert.Email{From: a.EmailFrom, To: a.EmailTo, Host: a.SMTPHost, Port: a.SMTPPort, User: a.SMTPUser, Pass: a.SMTPPass})
	}
	if len(providers) == 0 {
		if len(a.On) > 0 {
			log.Warn("ALERT_ON is set but no alert provider is: set ALERT_WEBHOOK_URL, ALERT_SLACK_WEBHOOK or ALERT_SMTP_HOST")
		}
		return nil, nil, nil
	}
	if len(a.On) == 0 {
		log.Info("alert providers are configured but ALERT_ON is empty: only `meshguard alerts test` sends alerts")
	}
	d, err := alert.NewDispatcher(alert.Config{
		Outbox: p.db, Providers: providers, RateLimit: a.RateLimit, Result: p.metrics.AlertResult,
		Origin: alert.Origin{Instance: a.Instance, Environment: a.Environment}, Links: links, Logger: log,
	})
	return d, providers, err
}

// alertsAdmin answers /admin/alerts.
type alertsAdmin struct {
	cfg       *config.Alerts
	providers []alert.Provider
	outbox    interface {
		CountOutbox(ctx context.Context) (map[string]int, error)
	}
}

func (a *alertsAdmin) Status(ctx context.Context) (api.AlertsStatus, error) {
	pending, err := a.outbox.CountOutbox(ctx)
	if err != nil {
		return api.AlertsStatus{}, err
	}
	st := api.AlertsStatus{Triggers: a.cfg.On.Names(), Providers: []api.AlertProvider{}, RateLimit: a.cfg.RateLimit,
		Instance: a.cfg.Instance, Environment: a.cfg.Environment, Pending: pending}
	if st.Triggers == nil {
		st.Triggers = []string{}
	}
	for _, p := range a.providers {
		st.Providers = append(st.Providers, api.AlertProvider{Name: p.Name(), Target: a.target(p)})
	}
	return st, nil
}

// target says where a provider sends, without secrets: a webhook URL's
// path and query may hold a token (Slack's do), so only its host.
func (a *alertsAdmin) target(p alert.Provider) string {
	switch p := p.(type) {
	case *alert.Webhook:
		return hostOf(p.URL)
	case *alert.Slack:
		return hostOf(p.URL)
	case *alert.Email:
		return strings.Join(p.To, ", ") + " via " + net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	}
	return ""
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func (a *alertsAdmin) Test(ctx context.Context) []api.AlertTestResult {
	test := alert.ForTest(time.Now(), alert.Origin{Instance: a.cfg.Instance, Environment: a.cfg.Environment})
	out := make([]api.AlertTestResult, 0, len(a.providers))
	for _, p := range a.providers {
		sctx, cancel := context.WithTimeout(ctx, alert.DefaultTimeout)
		err := p.Send(sctx, &test)
		cancel()
		r := api.AlertTestResult{Provider: p.Name(), Delivered: err == nil}
		if err != nil {
			r.Error = err.Error()
		}
		out = append(out, r)
	}
	return out
}
