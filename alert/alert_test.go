package alert

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meshguard/meshguard/audit"
)

var at = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestParseTriggers(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"deny":               "deny",
		" deny , rate_limit": "deny,rate_limit",
		"all":                "deny,error,rate_limit",
		"error,all":          "deny,error,rate_limit",
	} {
		got, err := ParseTriggers(in)
		if err != nil || strings.Join(got.Names(), ",") != want {
			t.Errorf("ParseTriggers(%q) = %v, %v; want %s", in, got.Names(), err, want)
		}
	}
	for _, bad := range []string{"denied", "deny;error", "ALL", "test"} {
		if _, err := ParseTriggers(bad); !errors.Is(err, ErrInvalidTriggers) {
			t.Errorf("ParseTriggers(%q) accepted", bad)
		}
	}
}

// TestForDecision: which decisions raise which alert, at which severity
// (the table in docs/alerting.md).
func TestForDecision(t *testing.T) {
	all, _ := ParseTriggers("all")
	denyOnly, _ := ParseTriggers("deny")
	rec := func(edit func(r *audit.Record)) *audit.Record {
		r := &audit.Record{Timestamp: at, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", AgentID: "agent_x", AgentName: "emailer", TrustTier: "verified",
			Action: "write:email", Method: "POST", Path: "/outbox", Decision: "deny", Status: 403, Policy: "emailers", Reason: "rule_deny"}
		edit(r)
		return r
	}
	for _, tt := range []struct {
		name     string
		rec      *audit.Record
		triggers Triggers
		want     Trigger
		severity Severity
		message  string
	}{
		{"a denial", rec(func(*audit.Record) {}), all, TriggerDeny, SeverityWarning, "emailer was denied write:email on POST /outbox: rule_deny."},
		// A /v1/check question has neither: the message leaves them out.
		{"a /v1/check denial, no method or path", rec(func(r *audit.Record) { r.Method, r.Path = "", "" }), all, TriggerDeny, SeverityWarning,
			"emailer was denied write:email: rule_deny."},
		{"a denial with a path only", rec(func(r *audit.Record) { r.Method = "" }), all, TriggerDeny, SeverityWarning,
			"emailer was denied write:email on /outbox: rule_deny."},
		{"a privileged agent denied", rec(func(r *audit.Record) { r.TrustTier = "privileged" }), all, TriggerDeny, SeverityCritical, ""},
		{"an admin action denied", rec(func(r *audit.Record) { r.Action = "admin:keys" }), all, TriggerDeny, SeverityCritical, ""},
		{"a rate limit", rec(func(r *audit.Record) { r.Status, r.Reason = 429, "rate_limited" }), all, TriggerRateLimit, SeverityWarning,
			"emailer exceeded a rate limit on write:email (emailers)."},
		{"a rate limit, not configured", rec(func(r *audit.Record) { r.Status = 429 }), denyOnly, "", "", ""},
		{"an allow", rec(func(r *audit.Record) { r.Decision, r.Status = "allow", 200 }), all, "", "", ""},
		// Announced once by the approval alert, not on every retry.
		{"a request waiting for approval", rec(func(r *audit.Record) { r.Reason = "approval_required" }), all, "", "", ""},
		{"a request whose approval was denied", rec(func(r *audit.Record) { r.Reason = "approval_denied" }), all, TriggerDeny, SeverityWarning, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, ok := ForDecision(tt.rec, tt.triggers, Origin{Instance: "mg-1", Environment: "prod"})
			if ok != (tt.want != "") {
				t.Fatalf("raised %v", ok)
			}
			if !ok {
				return
			}
			if a.Trigger != tt.want || a.Severity != tt.severity || a.Event != Event || a.Version != Version || !strings.HasPrefix(a.ID, "alt_") ||
				a.Entry.TraceID != tt.rec.TraceID || a.Entry.PolicyName != "emailers" || a.Instance != "mg-1" || a.Environment != "prod" || a.Title == "" {
				t.Fatalf("alert %+v", a)
			}
			if tt.message != "" && a.Message != tt.message {
				t.Errorf("message %q, want %q", a.Message, tt.message)
			}
		})
	}
	if a := ForError("storing audit records", errors.New("disk full"), at, Origin{}); a.Severity != SeverityCritical || a.Trigger != TriggerError {
		t.Errorf("error alert %+v", a)
	}
	if a := ForTest(at, Origin{}); a.Severity != SeverityInfo || !strings.Contains(a.Message, "test") {
		t.Errorf("test alert %+v", a)
	}
}

// receiver is a real HTTP server on 127.0.0.1 that keeps what it gets.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	hdrs   []http.Header
	status int
	srv    *httptest.Server
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies, r.hdrs = append(r.bodies, b), append(r.hdrs, req.Header.Clone())
		r.mu.Unlock()
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// TestWebhook: the receiver gets the documented payload with its headers, and
// a signature it verifies on the raw body; a tampered body or another
// secret does not verify; a non-2xx answer is a delivery failure.
func TestWebhook(t *testing.T) {
	r := newReceiver(t, 204)
	secret := []byte("s3cret-for-the-receiver")
	w := &Webhook{URL: r.srv.URL + "/hooks/meshguard", Secret: secret}
	all, _ := ParseTriggers("all")
	a, _ := ForDecision(&audit.Record{Timestamp: at, TraceID: "t1", AgentName: "emailer", Action: "write:email", Decision: "deny", Status: 403, Reason: "rule_deny"}, all, Origin{Instance: "mg-1"})
	if err := w.Send(context.Background(), &a); err != nil {
		t.Fatal(err)
	}
	body, hdr := r.bodies[0], r.hdrs[0]
	if !Verify(secret, body, hdr.Get(HeaderSignature)) {
		t.Fatalf("the signature %q does not verify", hdr.Get(HeaderSignature))
	}
	if Verify([]byte("another secret"), body, hdr.Get(HeaderSignature)) || Verify(secret, append(body, ' '), hdr.Get(HeaderSignature)) ||
		Verify(secret, body, strings.TrimPrefix(hdr.Get(HeaderSignature), "sha256=")) {
		t.Fatal("a signature verified what it must not")
	}
	if hdr.Get(HeaderEvent) != "meshguard.alert" || hdr.Get(HeaderTrigger) != "deny" || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", hdr)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"event", "version", "id", "timestamp", "severity", "trigger", "title", "message", "entry", "instance", "environment"} {
		if _, ok := got[k]; !ok {
			t.Errorf("payload has no %q: %s", k, body)
		}
	}
	entry, _ := got["entry"].(map[string]any)
	for _, k := range []string{"traceId", "agentId", "agentName", "trustTier", "action", "method", "path", "decision", "policyName", "reason"} {
		if _, ok := entry[k]; !ok {
			t.Errorf("entry has no %q", k)
		}
	}

	for _, status := range []int{400, 500} {
		bad := newReceiver(t, status)
		err := (&Webhook{URL: bad.srv.URL}).Send(context.Background(), &a)
		if !errors.Is(err, ErrDelivery) || !strings.Contains(err.Error(), "answered") {
			t.Errorf("status %d: %v", status, err)
		}
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	if err := (&Webhook{URL: down.URL}).Send(context.Background(), &a); !errors.Is(err, ErrDelivery) {
		t.Errorf("a receiver that is down: %v", err)
	}
}

// TestSlack: a Slack-shaped receiver gets a Block Kit message with the
// agent, decision, action, policy, request, trace id and reason, and
// caller-chosen text cannot mention anyone.
func TestSlack(t *testing.T) {
	r := newReceiver(t, 200)
	s := &Slack{URL: r.srv.URL + "/services/T000/B000/XXXX"}
	all, _ := ParseTriggers("all")
	a, _ := ForDecision(&audit.Record{Timestamp: at, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", AgentName: "<!channel>", TrustTier: "verified",
		Action: "write:email", Method: "POST", Path: "/outbox", Decision: "deny", Status: 403, Policy: "emailers", Reason: "rule_deny"}, all, Origin{Instance: "mg-1", Environment: "prod"})
	if err := s.Send(context.Background(), &a); err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Text   string
		Blocks []struct {
			Type     string
			Text     *struct{ Type, Text string }
			Fields   []struct{ Type, Text string }
			Elements []struct{ Type, Text string }
		}
	}
	if err := json.Unmarshal(r.bodies[0], &msg); err != nil {
		t.Fatal(err)
	}
	if len(msg.Blocks) != 4 || msg.Blocks[0].Type != "header" || msg.Blocks[2].Type != "section" || msg.Blocks[3].Type != "context" || msg.Text == "" {
		t.Fatalf("blocks %+v", msg.Blocks)
	}
	var fields []string
	for _, f := range msg.Blocks[2].Fields {
		fields = append(fields, f.Text)
	}
	all2 := strings.Join(fields, "\n")
	for _, want := range []string{"*Agent*", "*Decision*\n`deny`", "*Action*\n`write:email`", "*Policy*\n`emailers`", "*Request*\n`POST /outbox`",
		"*Trace ID*\n`4bf92f3577b34da6a3ce929d0e0e4736`", "*Reason*\n`rule_deny`"} {
		if !strings.Contains(all2, want) {
			t.Errorf("fields %q lack %q", all2, want)
		}
	}
	// Decoded, no mrkdwn text (the fallback, the message, the fields)
	// holds a live mention; the plain_text header cannot mention anyone.
	for _, text := range append([]string{msg.Text, msg.Blocks[1].Text.Text}, fields...) {
		if strings.Contains(text, "<!channel>") {
			t.Errorf("a caller-chosen name mentions the channel: %q", text)
		}
	}
	if !strings.Contains(msg.Blocks[3].Elements[0].Text, "mg-1 · prod") {
		t.Errorf("context %q", msg.Blocks[3].Elements[0].Text)
	}

	// A path of 8 KiB of '&' (five characters each once escaped) still
	// fits Slack's limits: 3,000 for the section, 2,000 for a field.
	long, _ := ForDecision(&audit.Record{Timestamp: at, AgentName: "a", Action: "read:x", Method: "GET", Path: "/" + strings.Repeat("&", 8<<10),
		Decision: "deny", Status: 403, Reason: "rule_deny"}, all, Origin{})
	m := slackMessage(&long)
	if n := utf8.RuneCountInString(m.Blocks[1].Text.Text); n > 3000 {
		t.Errorf("section of %d characters", n)
	}
	for _, f := range m.Blocks[2].Fields {
		if n := utf8.RuneCountInString(f.Text); n > 2000 {
			t.Errorf("field of %d characters", n)
		}
	}
	if n := utf8.RuneCountInString(m.Blocks[0].Text.Text); n > 150 {
		t.Errorf("header of %d characters", n)
	}
}
