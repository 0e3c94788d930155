package alert

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// TestDecisionAlertsLeaveTheQueryOut: a denial's alert goes to Slack, a
// webhook or email, outside MeshGuard; a request's query string may hold
// a token (?access_token=…), which the audit record keeps but an alert
// must not carry, as spans do not (engine TestDenialsStandOut).
func TestDecisionAlertsLeaveTheQueryOut(t *testing.T) {
	const secret = "s3cr3t-t0ken"
	all, _ := ParseTriggers("all")
	for _, tt := range []struct {
		name, path, wantPath string
		status               int
	}{
		{"a query", "/outbox?access_token=" + secret, "/outbox", 403},
		{"a query after an encoded path", "/a%2Fb?x=1&api_key=" + secret, "/a%2Fb", 403},
		{"a fragment", "/outbox#" + secret, "/outbox", 403},
		{"a query only", "?token=" + secret, "", 403},
		{"a rate limit's query", "/outbox?access_token=" + secret, "/outbox", 429},
		{"no query", "/outbox", "/outbox", 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &audit.Record{Timestamp: at, AgentName: "emailer", Action: "write:email", Method: "POST", Path: tt.path,
				Decision: "deny", Status: tt.status, Reason: "rule_deny"}
			a, ok := ForDecision(rec, all, Origin{})
			if !ok {
				t.Fatal("no alert")
			}
			if a.Entry.Path != tt.wantPath {
				t.Errorf("path %q, want %q", a.Entry.Path, tt.wantPath)
			}
			body, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			slack, err := json.Marshal(slackMessage(&a))
			if err != nil {
				t.Fatal(err)
			}
			for name, out := range map[string]string{"webhook payload": string(body), "slack message": string(slack),
				"email text": emailText(&a), "email html": emailHTML(&a)} {
				if strings.Contains(out, secret) {
					t.Errorf("the %s carries the query's token: %s", name, out)
				}
			}
		})
	}
}
