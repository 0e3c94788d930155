package config_test

import (
	"errors"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/config"
)

// secretMark ends every secret the fuzzer sets, so a secret is found
// wherever it lands, however the fuzzer shaped the rest of it.
const secretMark = "s3cr3t-M4RK"

// FuzzAlertSettings: the ALERT_* settings, from the environment and from a
// configuration file. Load refuses them with an ErrInvalid that holds no
// secret (the webhook secret, the SMTP password, and the two webhook URLs,
// whose paths carry tokens), or takes them as given and valid together:
// http(s) URLs with a host, email addresses, email configured whole or not
// at all, a password only with a user, a signing secret only with a
// webhook, bounded numbers, known triggers. Written back as environment
// variables, what Load took loads to the same settings.
func FuzzAlertSettings(f *testing.F) {
	f.Add("deny,error", "https://alerts.example.com/hook?token=", "whsec", "https://hooks.slack.com/services/T0/B0/", "mg@example.com", "ops@example.com, sec@example.com", "smtp.example.com", "587", "mg", "pw", "10")
	f.Add("all", "", "", "", "", "", "", "", "", "", "")
	f.Add("deny,denied", "ftp://x/", "s", "http://", "not an address", "a@b,", "", "0", "", "pw", "0")
	f.Add(" rate_limit ,", "https://user:pass@alerts.example.com/", "", "https:///nohost", `"Ops, Team" <ops@example.com>`, "Ops <ops@example.com>", "smtp", " 25 ", "u", "", "10000")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, on, webhook, secret, slack, from, to, smtpHost, smtpPort, smtpUser, smtpPass, rateLimit string) {
		// A webhook URL's token ends it; a secret is marked at both ends, so
		// that a cut-short echo of it is found too.
		for _, s := range []*string{&webhook, &slack} {
			if *s != "" {
				*s += secretMark
			}
		}
		for _, s := range []*string{&secret, &smtpPass} {
			if *s != "" {
				*s = secretMark + *s + secretMark
			}
		}
		vars := map[string]string{
			"ALERT_ON": on, "ALERT_WEBHOOK_URL": webhook, "ALERT_WEBHOOK_SECRET": secret, "ALERT_SLACK_WEBHOOK": slack,
			"ALERT_EMAIL_FROM": from, "ALERT_EMAIL_TO": to, "ALERT_SMTP_HOST": smtpHost, "ALERT_SMTP_PORT": smtpPort,
			"ALERT_SMTP_USER": smtpUser, "ALERT_SMTP_PASS": smtpPass, "ALERT_RATE_LIMIT": rateLimit,
		}
		c, eerr := config.Load("", getenv(vars), nil)
		checkAlerts(t, "environment", c, eerr, vars)

		// The same settings in a configuration file (YAML holds text only:
		// it would write other bytes as !!binary).
		keys := map[string]string{}
		for name, v := range vars {
			if !utf8.ValidString(v) {
				return
			}
			if v != "" {
				keys[fileKey(name)] = v
			}
		}
		doc, err := yaml.Marshal(keys)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "meshguard.yaml")
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		fc, ferr := config.Load(path, nil, nil)
		checkAlerts(t, "file", fc, ferr, vars)
		if (eerr == nil) != (ferr == nil) {
			t.Fatalf("the environment and the file disagree: %v / %v", eerr, ferr)
		}
	})
}

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// fileKey is the configuration file's key of an ALERT_* variable:
// ALERT_SMTP_PASS → alertSmtpPass.
func fileKey(env string) string {
	parts := strings.Split(strings.ToLower(env), "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "")
}

// checkAlerts checks what Load made of vars.
func checkAlerts(t *testing.T, from string, c *config.Config, err error, vars map[string]string) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, config.ErrInvalid) || c != nil {
			t.Fatalf("%s: a refusal that is not an ErrInvalid: %v", from, err)
		}
		if strings.Contains(err.Error(), secretMark) {
			t.Fatalf("%s: a secret is in the error: %v", from, err)
		}
		return
	}
	a := c.Alerts
	for name, got := range map[string]string{"ALERT_WEBHOOK_URL": a.WebhookURL, "ALERT_WEBHOOK_SECRET": a.WebhookSecret,
		"ALERT_SLACK_WEBHOOK": a.SlackWebhook, "ALERT_SMTP_PASS": a.SMTPPass, "ALERT_SMTP_USER": a.SMTPUser, "ALERT_SMTP_HOST": a.SMTPHost} {
		if got != vars[name] {
			t.Fatalf("%s: %s=%q was taken as %q", from, name, vars[name], got)
		}
	}
	for _, u := range []string{a.WebhookURL, a.SlackWebhook} {
		if p, err := url.Parse(u); u != "" && (err != nil || p.Scheme != "http" && p.Scheme != "https" || p.Host == "") {
			t.Fatalf("%s: %q taken as a webhook URL", from, u)
		}
	}
	email := a.EmailFrom != "" || len(a.EmailTo) > 0 || a.SMTPHost != ""
	switch {
	case email && (a.EmailFrom == "" || len(a.EmailTo) == 0 || a.SMTPHost == ""):
		t.Fatalf("%s: email configured in part: %+v", from, a)
	case a.SMTPPass != "" && a.SMTPUser == "", a.WebhookSecret != "" && a.WebhookURL == "":
		t.Fatalf("%s: a secret without what it is for: %+v", from, a)
	case a.SMTPPort < 1 || a.SMTPPort > 65535 || a.RateLimit < 1 || a.RateLimit > 10_000:
		t.Fatalf("%s: port %d, rate limit %d", from, a.SMTPPort, a.RateLimit)
	}
	for _, addr := range append([]string{a.EmailFrom}, a.EmailTo...) {
		if _, err := mail.ParseAddress(addr); addr != "" && err != nil {
			t.Fatalf("%s: %q taken as an email address", from, addr)
		}
	}
	for tr := range a.On {
		if tr != alert.TriggerDeny && tr != alert.TriggerError && tr != alert.TriggerRateLimit {
			t.Fatalf("%s: trigger %q", from, tr)
		}
	}

	// Written back, the settings load to themselves.
	back, err := config.Load("", getenv(map[string]string{
		"ALERT_ON": strings.Join(a.On.Names(), ","), "ALERT_WEBHOOK_URL": a.WebhookURL, "ALERT_WEBHOOK_SECRET": a.WebhookSecret,
		"ALERT_SLACK_WEBHOOK": a.SlackWebhook, "ALERT_EMAIL_FROM": a.EmailFrom, "ALERT_EMAIL_TO": strings.Join(a.EmailTo, ","),
		"ALERT_SMTP_HOST": a.SMTPHost, "ALERT_SMTP_PORT": strconv.Itoa(a.SMTPPort), "ALERT_SMTP_USER": a.SMTPUser,
		"ALERT_SMTP_PASS": a.SMTPPass, "ALERT_RATE_LIMIT": strconv.Itoa(a.RateLimit), "ALERT_INSTANCE_NAME": a.Instance,
		"ALERT_ENVIRONMENT": a.Environment,
	}), nil)
	if err != nil {
		t.Fatalf("%s: the settings taken, written back, are refused: %v", from, err)
	}
	if !reflect.DeepEqual(back.Alerts, a) {
		t.Fatalf("%s: the settings taken, written back, load differently:\n got %+v\nwant %+v", from, back.Alerts, a)
	}
}
