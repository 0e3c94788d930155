package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/store"
)

// hookReceiver is a real webhook receiver that keeps what verifies under
// its secret, and counts what does not.
type hookReceiver struct {
	mu     sync.Mutex
	bodies [][]byte
	bad    int
	srv    *httptest.Server
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !alert.Verify([]byte(secret), b, r.Header.Get(alert.HeaderSignature)) || r.Header.Get(alert.HeaderEvent) != alert.EventApproval {
			h.bad++
		} else {
			h.bodies = append(h.bodies, b)
		}
		w.WriteHeader(204)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

const mailCall = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"eve@outside.example","password":"hunter2"}}}`

// TestServedApprovalNotification: on a served MeshGuard, a tool call its
// policy holds for approval is announced to a real webhook receiver — the
// signed meshguard.approval event, its arguments redacted with
// AUDIT_ARGUMENTS and absent without — and its signed link, taken from
// what the receiver got, shows the request on GET without deciding it;
// the POST approves it as link:webhook, the agent's retry is allowed, and
// the link then answers 409. A tampered link is 403 and changes nothing.
func TestServedApprovalNotification(t *testing.T) {
	for _, tc := range []struct {
		name      string
		arguments bool
		redact    []string // AUDIT_REDACT; nil: the default
		want      string   // the arguments in the notification
	}{
		{"arguments recorded, redacted by default", true, nil, `{"password":"[redacted]","to":"eve@outside.example"}`},
		{"arguments recorded, AUDIT_REDACT names the recipient", true, []string{"password", "to"}, `{"password":"[redacted]","to":"[redacted]"}`},
		{"digest only", false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const secret = "receiver-secret"
			hook := newHookReceiver(t, secret)
			r := start(t, func(c *config.Config) {
				c.Routes = []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}
				c.AuditArguments = tc.arguments
				if tc.redact != nil {
					c.AuditRedact = tc.redact
				}
				c.Alerts.WebhookURL, c.Alerts.WebhookSecret = hook.srv.URL, secret
				c.Alerts.ApprovalLinkBase = "https://meshguard.example.com"
				writePolicy(t, c, "mail.yaml", "name: mail\nappliesTo: {tags: [mailer]}\nrules:\n  - {name: outsiders, effect: approve, actions: [\"call:mail/*\"], approvers: [security]}\n")
			})
			tok := r.agent(t, "mailer", "mailer")
			call := func() *authv3.CheckResponse {
				req := checkRequest(tok, "POST", "/mcp")
				req.Attributes.Request.Http.RawBody = []byte(mailCall)
				resp, err := authv3.NewAuthorizationClient(r.grpc).Check(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			if resp := call(); resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
				t.Fatalf("the first call: %v", resp)
			}

			var body []byte
			eventually(t, "the approval announced", func() bool {
				hook.mu.Lock()
				defer hook.mu.Unlock()
				if len(hook.bodies) > 0 {
					body = hook.bodies[0]
				}
				return body != nil
			})
			var got alert.Alert
			if err := json.Unmarshal(body, &got); err != nil || got.Approval == nil {
				t.Fatalf("payload %s (%v)", body, err)
			}
			a := got.Approval
			if a.AgentName != "mailer" || strings.Join(a.Chain, ",") != "mailer" || a.Action != "call:mail/send_email" || a.Rule != "outsiders" ||
				a.Method != "tools/call" || a.Name != "send_email" || len(a.ArgumentsDigest) != 64 || a.Links == nil || a.TraceID == "" {
				t.Fatalf("approval %+v", a)
			}
			if gotArgs := compact(t, a.Arguments); gotArgs != tc.want {
				t.Fatalf("arguments %s, want %s", gotArgs, tc.want)
			}
			if strings.Contains(string(body), "hunter2") {
				t.Fatal("the password left MeshGuard")
			}

			other, err := store.OpenSQLite(context.Background(), filepath.Join(r.cfg.DataDir, "meshguard.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = other.Close() })
			status := func() approval.Approval {
				got, err := other.GetApproval(context.Background(), a.ID)
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			local := func(link string) string {
				return strings.Replace(link, "https://meshguard.example.com", "http://"+r.addrs.HTTP, 1)
			}
			approve := local(a.Links.Approve)

			tampered := strings.Replace(approve, "d=approve", "d=deny", 1)
			if res := linkDo(t, "POST", tampered); res != 403 || status().Status != approval.Pending {
				t.Fatalf("a tampered link: %d", res)
			}
			if res := linkDo(t, "GET", approve); res != 200 || status().Status != approval.Pending {
				t.Fatalf("GET: %d, approval %s (a GET must decide nothing)", res, status().Status)
			}
			if resp := call(); resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
				t.Fatal("allowed before anyone approved")
			}
			if res := linkDo(t, "POST", approve); res != 200 {
				t.Fatalf("POST: %d", res)
			}
			if now := status(); now.Status != approval.Approved || now.DecidedBy != "link:webhook" {
				t.Fatalf("after the POST: %s by %q", now.Status, now.DecidedBy)
			}
			// The link's decision is in the audit trail, as an admin's is.
			eventually(t, "the link's decision recorded", func() bool {
				found := false
				err := other.ScanAuditFiltered(context.Background(), store.AuditFilter{}, func(rec audit.Record, _ string) error {
					found = found || rec.Action == "approval:approve" && rec.Source == "link" && rec.Approval != nil &&
						rec.Approval.ID == a.ID && rec.TraceID == a.TraceID && rec.Context["by"] == "link:webhook"
					return nil
				})
				return err == nil && found
			})
			if resp := call(); resp.GetStatus().GetCode() != int32(code.Code_OK) {
				t.Fatalf("the retry after approval: %v", resp)
			}
			if res := linkDo(t, "POST", local(a.Links.Deny)); res != 409 {
				t.Fatalf("the deny link after the approval: %d", res)
			}
			hook.mu.Lock()
			defer hook.mu.Unlock()
			if hook.bad != 0 || len(hook.bodies) != 1 {
				t.Fatalf("the receiver got %d verified approvals and %d that did not verify; want one, announced once", len(hook.bodies), hook.bad)
			}
		})
	}
}

func linkDo(t *testing.T, method, link string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, link, strings.NewReader(url.Values{"reason": {"ok"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if len(raw) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestApprovalsUnannouncedWarning: with an approve rule and no alert
// provider, serve warns at start; with a provider it does not.
func TestApprovalsUnannouncedWarning(t *testing.T) {
	for _, tc := range []struct {
		name     string
		provider bool
		warn     bool
	}{{"no provider", false, true}, {"a webhook", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			logs := newLogEvents()
			cfg := configWith(t, func(c *config.Config) {
				writePolicy(t, c, "ask.yaml", "name: ask\nrules:\n  - {name: every-read, effect: approve, actions: [\"read:*\"]}\n")
				if tc.provider {
					c.Alerts.WebhookURL = newHookReceiver(t, "s").srv.URL
				}
			})
			runWith(t, cfg, Options{Logger: slog.New(logs)})
			warned := false
			logs.store.mu.Lock()
			for _, l := range logs.store.lines {
				if l.level == slog.LevelWarn && strings.Contains(l.msg, "no alert provider is configured to announce approvals") {
					warned = true
				}
			}
			logs.store.mu.Unlock()
			if warned != tc.warn {
				t.Fatalf("warned %v, want %v", warned, tc.warn)
			}
		})
	}
}
