package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver, for the test's own connection
	_ "modernc.org/sqlite"             // the sqlite driver, for the test's own connection

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestAuditStoreRefusingARecordRaisesADeadLetter: the audit store refuses
// the record of one decision as data (a constraint an operator added).
// Before the fix the writer retried it forever and, MaxLag later, refused
// every decision. Now the record is dead-lettered: later decisions are
// given and recorded, a critical alert reaches the webhook, the
// meshguard_audit_dead_letters_total counter counts it, GET
// /admin/audit/deadletter lists it, and verify fails naming it.
func TestAuditStoreRefusingARecordRaisesADeadLetter(t *testing.T) {
	for _, b := range []struct {
		name   string
		config func(t *testing.T, c *config.Config)
		refuse func(t *testing.T, c *config.Config)
	}{
		{"sqlite", func(*testing.T, *config.Config) {}, func(t *testing.T, c *config.Config) {
			// The server writes meanwhile: wait for its lock, as it does.
			raw, err := sql.Open("sqlite", "file:"+filepath.Join(c.DataDir, "meshguard.db")+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Exec(`CREATE TRIGGER test_refuse BEFORE INSERT ON audit WHEN NEW.action = 'read:refused'
				BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
				t.Fatal(err)
			}
		}},
		{"postgres", func(t *testing.T, c *config.Config) { c.DatabaseURL = pgtest.NewDatabase(t) }, func(t *testing.T, c *config.Config) {
			raw, err := sql.Open("pgx", c.DatabaseURL)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Exec(`ALTER TABLE audit ADD CONSTRAINT test_refuse CHECK (action <> 'read:refused')`); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			var mu sync.Mutex
			var alerts []alert.Alert
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				var a alert.Alert
				if json.Unmarshal(body, &a) == nil {
					mu.Lock()
					alerts = append(alerts, a)
					mu.Unlock()
				}
			}))
			t.Cleanup(hook.Close)
			r := start(t, func(c *config.Config) {
				b.config(t, c)
				c.Alerts.On, _ = alert.ParseTriggers("error")
				c.Alerts.WebhookURL, c.Alerts.WebhookSecret, c.Alerts.RateLimit = hook.URL, "hook-secret", 10
			})
			b.refuse(t, r.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			agent, err := r.admin.CreateAgent(ctx, api.CreateAgentRequest{Name: "reader-1", TrustTier: "verified", Tags: []string{"reader"}})
			if err != nil {
				t.Fatal(err)
			}
			as := r.admin.WithAgentToken(agent.Token)
			refused, err := as.Check(ctx, api.CheckRequest{Action: "read:refused"})
			if refused.DecisionID == "" {
				t.Fatalf("the check whose record the store refuses: %v", err)
			}
			badID := "aud_" + strings.TrimPrefix(refused.DecisionID, "dec_")
			eventually(t, "the dead-letter alert", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, a := range alerts {
					if a.Trigger == alert.TriggerError && a.Severity == alert.SeverityCritical && strings.Contains(a.Message, "dead-lettered") &&
						strings.Contains(a.Message, badID) {
						return true
					}
				}
				return false
			})
			// Decisions go on, and are recorded in the chain.
			for range 3 {
				if d, err := as.Check(ctx, api.CheckRequest{Action: "read:docs"}); err != nil || !d.Allowed {
					t.Fatalf("a check after the dead letter: %+v %v", d, err)
				}
			}
			eventually(t, "the counter", func() bool {
				return strings.Contains(scrape(t, r), "meshguard_audit_dead_letters_total 1\n")
			})
			page, err := r.admin.AuditDeadLetters(ctx, 0, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(page.DeadLetters) != 1 || page.DeadLetters[0].ID != badID || !strings.Contains(page.DeadLetters[0].Record, `"action":"read:refused"`) {
				t.Fatalf("GET /admin/audit/deadletter: %+v; want %s", page, badID)
			}
			eventually(t, "the later records stored", func() bool {
				p, err := r.admin.QueryAudit(ctx, client.AuditFilter{Action: "read:docs"})
				return err == nil && len(p.Records) == 3
			})
			res, err := r.admin.VerifyAudit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || res.Break != nil || res.DeadLetters == nil || res.DeadLetters.Count != 1 || res.DeadLetters.IDs[0] != badID {
				t.Fatalf("verify: %+v; want not ok, unbroken, the dead letter %s", res, badID)
			}
		})
	}
}

func scrape(t *testing.T, r *running) string {
	t.Helper()
	resp, err := http.Get("http://" + r.addrs.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
