package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/approval"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const approvalID = "apr_01a24bdd72b1a9199a128f5f697bc0a56924f55d"

// pendingApproval is an approval as the engine raises it, its arguments
// as the audit trail records them (password redacted).
func pendingApproval() *approval.Approval {
	return &approval.Approval{
		ID: approvalID, Status: approval.Pending, AgentID: "agent_mailer", AgentName: "mailer <!here>",
		Chain: []string{"agent_planner", "agent_mailer"}, Action: "call:mail/send_email", Resource: "mcp://mail/tools/send_email",
		Method: "tools/call", Name: "send_email", Arguments: json.RawMessage(`{"password":"[redacted]","to":"eve@outside.example"}`),
		ArgumentsDigest: "sha256:9f2c", Query: "to=eve%40outside.example&token=[redacted]&note=<!channel>",
		Context: json.RawMessage(`{"query.to":"eve@outside.example","query.token":"[redacted]"}`), Policy: "mailers", Rule: "outsiders", Approvers: []string{"security"},
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour),
	}
}

// testLinks stands for APPROVAL_LINK_BASE's signer: a link per channel.
func testLinks(id, channel string, exp time.Time) (Links, bool) {
	l := "https://mg.example.com/approvals/" + id + "?via=" + channel + "&exp=" + exp.UTC().Format("20060102")
	return Links{Approve: l + "&d=approve", Deny: l + "&d=deny"}, true
}

// approvalRig is a dispatcher over a real SQLite outbox with links, and
// with ALERT_RATE_LIMIT used up by denials before the approval comes.
func approvalRig(t *testing.T, providers []Provider, links LinkFunc) *Dispatcher {
	t.Helper()
	s := openStore(t, filepath.Join(t.TempDir(), "mg.db"))
	d, err := NewDispatcher(Config{Outbox: s, Providers: providers, RateLimit: 1, Poll: 20 * time.Millisecond, Links: links,
		Origin: Origin{Instance: "mg-1"}})
	if err != nil {
		t.Fatal(err)
	}
	ticks := make(chan time.Time)
	d.tick = ticks // the minute never ends: whatever the limit holds stays held
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return d
}

// TestApprovalWebhook: an approval is announced to a real receiver as the
// signed meshguard.approval event with every documented field, its
// arguments as recorded, and links signed for the webhook channel — even
// with the rate limit used up, and never folded into a digest.
func TestApprovalWebhook(t *testing.T) {
	r := newReceiver(t, 204)
	secret := []byte("s3cret-for-the-receiver")
	d := approvalRig(t, []Provider{&Webhook{URL: r.srv.URL, Secret: secret}}, testLinks)
	for _, name := range []string{"a", "b", "c"} {
		d.Raise(denial(name)) // one goes out, two are held for the digest
	}
	a := ForApproval(pendingApproval(), []string{"planner", "mailer"}, at, Origin{Instance: "mg-1"})
	if err := d.Announce(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	var body []byte
	eventually(t, "the approval delivered", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, h := range r.hdrs {
			if h.Get(HeaderEvent) == EventApproval {
				body = r.bodies[i]
				if !Verify(secret, body, h.Get(HeaderSignature)) || h.Get(HeaderTrigger) != "approval" {
					t.Fatalf("headers %v: the signature does not verify or the trigger is wrong", h)
				}
				return true
			}
		}
		return false
	})
	var got struct {
		Event, Trigger string
		Approval       map[string]any
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Event != "meshguard.approval" || got.Trigger != "approval" {
		t.Fatalf("event %q trigger %q", got.Event, got.Trigger)
	}
	want := map[string]string{
		"id": approvalID, "agentId": "agent_mailer", "agentName": "mailer <!here>", "chain": `["planner","mailer"]`, "action": "call:mail/send_email",
		"resource": "mcp://mail/tools/send_email", "policy": "mailers", "rule": "outsiders", "approvers": `["security"]`, "method": "tools/call",
		"name": "send_email", "arguments": `{"password":"[redacted]","to":"eve@outside.example"}`, "argumentsDigest": "sha256:9f2c",
		"query": "to=eve%40outside.example&token=[redacted]&note=<!channel>", "context": `{"query.to":"eve@outside.example","query.token":"[redacted]"}`,
		"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "expiresAt": "2026-11-26T12:00:00Z", "command": "meshguard approvals approve " + approvalID,
		"links": `{"approve":"https://mg.example.com/approvals/` + approvalID + `?via=webhook\u0026exp=20261126\u0026d=approve","deny":"https://mg.example.com/approvals/` + approvalID + `?via=webhook\u0026exp=20261126\u0026d=deny"}`,
	}
	for k, v := range want {
		raw, ok := got.Approval[k]
		if !ok {
			t.Errorf("approval has no %q: %s", k, body)
			continue
		}
		s, isString := raw.(string)
		if !isString {
			b, _ := json.Marshal(raw)
			s = string(b)
		}
		if s != v {
			t.Errorf("approval.%s = %s, want %s", k, s, v)
		}
	}
	if !bytes.Contains(body, []byte(`"title":"Approval requested: mailer`)) {
		t.Errorf("the approval went out as something else: %s", body)
	}
}

// TestApprovalSlack: the Block Kit message (golden file; -update rewrites
// it) has the request's fields and two link buttons; the agent's chosen
// name mentions no one. Without links it names the CLI command instead.
func TestApprovalSlack(t *testing.T) {
	r := newReceiver(t, 200)
	d := approvalRig(t, []Provider{&Slack{URL: r.srv.URL + "/services/T000/B000/XXXX"}}, testLinks)
	a := ForApproval(pendingApproval(), []string{"planner", "mailer <!here>"}, at, Origin{Instance: "mg-1", Environment: "prod"})
	a.ID = "alt_000000000000000000000000" // fixed, for the golden file
	if err := d.Announce(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the message delivered", func() bool { return r.count() == 1 })
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, r.bodies[0], "", "  "); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "golden", "slack_approval.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./alert -run TestApprovalSlack -update writes it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("the Slack message differs from %s (-update rewrites it):\n%s", golden, pretty.String())
	}
	if bytes.Contains(r.bodies[0], []byte("<!here>")) {
		t.Error("an agent's name mentions the channel")
	}
	for _, w := range []string{`"type":"actions"`, `"text":"Approve"`, `"style":"primary"`, `"text":"Deny"`, "via=slack", `"url":`} {
		if !bytes.Contains(r.bodies[0], []byte(w)) {
			t.Errorf("the message lacks %s", w)
		}
	}

	bare := slackMessage(&a)
	b, _ := json.Marshal(bare)
	if bytes.Contains(b, []byte(`"actions"`)) || !bytes.Contains(b, []byte("meshguard approvals approve "+approvalID)) {
		t.Errorf("without links: %s", b)
	}
}

// TestApprovalEmail: a real SMTP server gets the approval with its fields
// and the email channel's links, in the plain and the HTML part.
func TestApprovalEmail(t *testing.T) {
	s := startSMTP(t, true)
	d := approvalRig(t, []Provider{s.email("alerts", "s3cret")}, testLinks)
	if err := d.Announce(t.Context(), ForApproval(pendingApproval(), []string{"planner", "mailer"}, at, Origin{})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the email received", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.data != "" })
	s.mu.Lock()
	data := s.data
	s.mu.Unlock()
	parts := mimeParts(t, data)
	link := "https://mg.example.com/approvals/" + approvalID + "?via=email&exp=20261126&d=approve"
	for _, w := range []string{"Approve: " + link, "planner → mailer", "call:mail/send_email", `{"password":"[redacted]","to":"eve@outside.example"}`, "outsiders",
		"Query", "to=eve%40outside.example&token=[redacted]&note=<!channel>", `{"query.to":"eve@outside.example","query.token":"[redacted]"}`} {
		if !strings.Contains(parts["text/plain"], w) {
			t.Errorf("the plain part lacks %q:\n%s", w, parts["text/plain"])
		}
	}
	for _, w := range []string{`<a href="https://mg.example.com/approvals/` + approvalID + `?via=email&amp;exp=20261126&amp;d=deny">Deny</a>`, "mailer &lt;!here&gt;",
		"to=eve%40outside.example&amp;token=[redacted]&amp;note=&lt;!channel&gt;"} {
		if !strings.Contains(parts["text/html"], w) {
			t.Errorf("the HTML part lacks %q:\n%s", w, parts["text/html"])
		}
	}
}

// mimeParts decodes a received message's parts by media type.
func mimeParts(t *testing.T, data string) map[string]string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		mt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		var r io.Reader = p // multipart decodes quoted-printable itself
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			t.Fatalf("part %s in base64", mt)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		out[mt] = string(b)
	}
}
