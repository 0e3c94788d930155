package config

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"

	"github.com/meshguard/meshguard/alert"
)

// Alerts are the ALERT_* settings (docs/alerting.md).
type Alerts struct {
	On            alert.Triggers
	WebhookURL    string
	WebhookSecret string
	SlackWebhook  string
	EmailFrom     string
	EmailTo       []string
	SMTPHost      string
	SMTPPort      int
	SMTPUser      string
	SMTPPass      string
	RateLimit     int
	Instance      string
	Environment   string
	// ApprovalLinkBase is APPROVAL_LINK_BASE: MeshGuard's HTTP port as
	// approvers reach it; approval notifications carry signed links under
	// it ("" : no links, the CLI command instead).
	ApprovalLinkBase string
}

// alertSettings are the ALERT_* settings, appended to settings.
var alertSettings = []setting{
	{"alertOn", "ALERT_ON", "alert-on", "what raises alerts: deny, error, rate_limit (comma-separated) or all; empty: none", "", func(c *Config, v string) error {
		t, err := alert.ParseTriggers(v)
		if err != nil {
			return err
		}
		c.Alerts.On = t
		return nil
	}},
	{"alertWebhookUrl", "ALERT_WEBHOOK_URL", "alert-webhook-url", "send alerts as signed JSON to this http(s) URL", "", httpURL(func(c *Config) *string { return &c.Alerts.WebhookURL })},
	{"alertWebhookSecret", "ALERT_WEBHOOK_SECRET", "alert-webhook-secret", "sign webhook bodies with this secret (X-MeshGuard-Signature: sha256=…)", "", str(func(c *Config) *string { return &c.Alerts.WebhookSecret })},
	{"alertSlackWebhook", "ALERT_SLACK_WEBHOOK", "alert-slack-webhook", "send alerts to this Slack incoming webhook URL", "", httpURL(func(c *Config) *string { return &c.Alerts.SlackWebhook })},
	{"alertEmailFrom", "ALERT_EMAIL_FROM", "alert-email-from", "send alert email from this address", "", func(c *Config, v string) error {
		if v != "" {
			if _, err := mail.ParseAddress(v); err != nil {
				return fmt.Errorf("%q: expected an email address", v)
			}
		}
		c.Alerts.EmailFrom = v
		return nil
	}},
	{"alertEmailTo", "ALERT_EMAIL_TO", "alert-email-to", "send alert email to these addresses (comma-separated)", "", func(c *Config, v string) error {
		c.Alerts.EmailTo = nil
		if v == "" {
			return nil
		}
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if _, err := mail.ParseAddress(a); err != nil {
				return fmt.Errorf("%q: expected email addresses, comma-separated", a)
			}
			c.Alerts.EmailTo = append(c.Alerts.EmailTo, a)
		}
		return nil
	}},
	{"alertSmtpHost", "ALERT_SMTP_HOST", "alert-smtp-host", "the SMTP server for alert email (STARTTLS required)", "", str(func(c *Config) *string { return &c.Alerts.SMTPHost })},
	{"alertSmtpPort", "ALERT_SMTP_PORT", "alert-smtp-port", "the SMTP server's port", "587", port(func(c *Config) *int { return &c.Alerts.SMTPPort })},
	{"alertSmtpUser", "ALERT_SMTP_USER", "alert-smtp-user", "the SMTP user (with ALERT_SMTP_PASS)", "", str(func(c *Config) *string { return &c.Alerts.SMTPUser })},
	{"alertSmtpPass", "ALERT_SMTP_PASS", "alert-smtp-pass", "the SMTP password", "", str(func(c *Config) *string { return &c.Alerts.SMTPPass })},
	{"alertRateLimit", "ALERT_RATE_LIMIT", "alert-rate-limit", "alerts a minute sent one by one; beyond, one digest a minute", "10", intIn(func(c *Config) *int { return &c.Alerts.RateLimit }, 1, 10_000)},
	{"alertInstanceName", "ALERT_INSTANCE_NAME", "alert-instance-name", "names this MeshGuard in alerts", "", str(func(c *Config) *string { return &c.Alerts.Instance })},
	{"approvalLinkBase", "APPROVAL_LINK_BASE", "approval-link-base", "MeshGuard's HTTP port as approvers reach it (https://meshguard.example.com): approval notifications carry signed links under it", "", func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
				return errors.New("expected an http:// or https:// URL without credentials, query or fragment")
			}
		}
		c.Alerts.ApprovalLinkBase = strings.TrimRight(v, "/")
		return nil
	}},
	{"alertEnvironment", "ALERT_ENVIRONMENT", "alert-environment", "names the environment in alerts (production, staging, …)", "", str(func(c *Config) *string { return &c.Alerts.Environment })},
}

// httpURL parses an optional absolute http(s) URL.
func httpURL(field func(c *Config) *string) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("expected an http:// or https:// URL")
			}
			if p := placeholder(v, u); p != "" {
				// Names the fragment, not the URL: its path may hold a token.
				return fmt.Errorf("holds %q: this looks like a placeholder copied from an example; expected the real URL", p)
			}
		}
		*field(c) = v
		return nil
	}
}

// placeholders are what an example URL holds where the real one has its
// token: an ellipsis, "<your-token>", "{token}" or CHANGEME. None of them
// occurs in a URL a provider issues.
var placeholders = []string{"\u2026", "...", "<", ">", "{", "}", "changeme"}

// placeholder returns the placeholder v (parsed: u) holds, or "" for none. The URL is
// read as written and percent-decoded (%3Ctoken%3E is <token> too), and
// each path segment and query value is held to the masks examples use for
// a token: a run of X (Slack's own example ends in XXXX…; a real token,
// random letters and digits, is never all X).
func placeholder(v string, u *url.URL) string {
	query, err := url.QueryUnescape(u.RawQuery)
	if err != nil {
		query = u.RawQuery
	}
	for _, s := range []string{v, u.Path, query} {
		lower := strings.ToLower(s)
		for _, p := range placeholders {
			if strings.Contains(lower, p) {
				return p
			}
		}
	}
	for _, part := range strings.FieldsFunc(u.Path+"?"+query, func(r rune) bool { return strings.ContainsRune("/?&=", r) }) {
		if len(part) >= 3 && (strings.Trim(part, "X") == "" || strings.Trim(part, "x") == "") {
			if len(part) > 16 {
				return part[:16] + "\u2026"
			}
			return part
		}
	}
	return ""
}

// checkAlerts checks the ALERT_* settings together: email needs a sender,
// recipients and a server, or none of them; a password needs a user.
func (c *Config) checkAlerts() error {
	a := &c.Alerts
	email := a.EmailFrom != "" || len(a.EmailTo) > 0 || a.SMTPHost != ""
	switch {
	case email && a.EmailFrom == "":
		return fmt.Errorf("%w: ALERT_EMAIL_FROM: required with ALERT_EMAIL_TO and ALERT_SMTP_HOST", ErrInvalid)
	case email && len(a.EmailTo) == 0:
		return fmt.Errorf("%w: ALERT_EMAIL_TO: required with ALERT_EMAIL_FROM and ALERT_SMTP_HOST", ErrInvalid)
	case email && a.SMTPHost == "":
		return fmt.Errorf("%w: ALERT_SMTP_HOST: required with ALERT_EMAIL_FROM and ALERT_EMAIL_TO", ErrInvalid)
	case a.SMTPPass != "" && a.SMTPUser == "":
		return fmt.Errorf("%w: ALERT_SMTP_USER: required with ALERT_SMTP_PASS", ErrInvalid)
	case a.WebhookSecret != "" && a.WebhookURL == "":
		return fmt.Errorf("%w: ALERT_WEBHOOK_URL: required with ALERT_WEBHOOK_SECRET", ErrInvalid)
	}
	return nil
}
