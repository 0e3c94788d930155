package config

import (
	"errors"
	"strings"
	"testing"
)

// TestAlertURLPlaceholders: a webhook URL pasted from an example, with its
// token still a placeholder, is refused at start naming the setting and
// the placeholder (never the URL, whose path may hold a token); real
// providers' URLs are accepted.
func TestAlertURLPlaceholders(t *testing.T) {
	tests := []struct {
		name, setting, url string
		want               string // "" accepted, else in the error
	}{
		{"slack with an ellipsis", "ALERT_SLACK_WEBHOOK", "https://hooks.slack.com/services/T000/B000/\u2026", "\"\u2026\""},
		{"slack with three dots", "ALERT_SLACK_WEBHOOK", "https://hooks.slack.com/services/...", `"..."`},
		{"webhook with angle brackets", "ALERT_WEBHOOK_URL", "https://alerts.example.com/hook/<token>", `"<"`},
		{"webhook with a template", "ALERT_WEBHOOK_URL", "https://alerts.example.com/hook?token={token}", `"{"`},
		{"webhook CHANGEME", "ALERT_WEBHOOK_URL", "https://example.com/CHANGEME", `"changeme"`},
		{"the README's slack url", "ALERT_SLACK_WEBHOOK", "https://hooks.slack.com/services/T000/B000/XXXX", `"XXXX"`},
		{"slack's own example url", "ALERT_SLACK_WEBHOOK", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", `"XXXXXXXXXXXXXXXX…"`},
		{"webhook with xxx in the query", "ALERT_WEBHOOK_URL", "https://alerts.example.com/hook?token=xxx", `"xxx"`},
		{"webhook with percent-encoded angle brackets", "ALERT_WEBHOOK_URL", "https://alerts.example.com/hook/%3Ctoken%3E", `"<"`},
		{"webhook with a percent-encoded template in the query", "ALERT_WEBHOOK_URL", "https://alerts.example.com/hook?token=%7Btoken%7D", `"{"`},
		{"webhook with percent-encoded dots", "ALERT_WEBHOOK_URL", "https://alerts.example.com/hook/%2E%2E%2E", `"..."`},
		{"a real slack url with X in its token", "ALERT_SLACK_WEBHOOK", "https://hooks.slack.com/services/T0XXXABCD/B0123XXXX/abXXXXGHijklMNOPqrstUVWX", ""},
		{"a real webhook with x segments", "ALERT_WEBHOOK_URL", "https://alerts.example.com/x/xx/xml/hook?x=1", ""},
		{"a real slack url", "ALERT_SLACK_WEBHOOK", "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdEFGHijklMNOPqrstUVWX", ""},
		{"a real webhook with a query", "ALERT_WEBHOOK_URL", "https://alerts.example.com:8443/v1/hook.json?token=a.b-c_d~e&x=1", ""},
		{"a webhook with a percent-encoded path", "ALERT_WEBHOOK_URL", "http://127.0.0.1:9000/caf%C3%A9/hook", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("", env(map[string]string{tc.setting: tc.url}), nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused a real URL: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.setting+": holds "+tc.want) {
				t.Fatalf("got %v, want %s: holds %s", err, tc.setting, tc.want)
			}
			if strings.Contains(err.Error(), "example.com") || strings.Contains(err.Error(), "services") {
				t.Fatalf("error %q shows the URL", err)
			}
		})
	}
}

// TestApprovalLinkBase: APPROVAL_LINK_BASE is an http(s) origin and path,
// without credentials, query or fragment (links add their own query).
func TestApprovalLinkBase(t *testing.T) {
	for _, tc := range []struct {
		name, v, want string // want "": refused
	}{
		{"https", "https://meshguard.example.com", "https://meshguard.example.com"},
		{"a path, trailing slash dropped", "https://example.com/mg/", "https://example.com/mg"},
		{"unset", "", ""},
		{"no scheme", "meshguard.example.com", "!"},
		{"a query", "https://example.com/?x=1", "!"},
		{"a fragment", "https://example.com/#x", "!"},
		{"credentials", "https://u:p@example.com", "!"},
		{"ftp", "ftp://example.com", "!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load("", env(map[string]string{"APPROVAL_LINK_BASE": tc.v}), nil)
			if tc.want == "!" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "APPROVAL_LINK_BASE") {
					t.Fatalf("accepted %q: %v", tc.v, err)
				}
				return
			}
			if err != nil || c.Alerts.ApprovalLinkBase != tc.want {
				t.Fatalf("got %q, %v; want %q", c.Alerts.ApprovalLinkBase, err, tc.want)
			}
		})
	}
}
