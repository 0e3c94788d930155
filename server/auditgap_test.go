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

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestAuditStoreLosingRecordsRaisesAGap: the store loses the newest audit
// records it had committed (a crash with synchronous_commit off, a failover
// to a replica that never had them). The writer goes on from what the store
// kept, and the loss raises a critical error alert under ALERT_ON error and
// counts in meshguard_audit_gaps.
func TestAuditStoreLosingRecordsRaisesAGap(t *testing.T) {
	for _, b := range []struct {
		name   string
		config func(t *testing.T, c *config.Config)
		lose   func(t *testing.T, c *config.Config, n int)
	}{
		{"sqlite", func(*testing.T, *config.Config) {}, func(t *testing.T, c *config.Config, n int) {
			raw, err := sql.Open("sqlite", "file:"+filepath.Join(c.DataDir, "meshguard.db")+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Exec(`DELETE FROM audit WHERE seq > (SELECT MAX(seq) FROM audit) - ?`, n); err != nil {
				t.Fatal(err)
			}
		}},
		{"postgres", func(t *testing.T, c *config.Config) { c.DatabaseURL = pgtest.NewDatabase(t) }, func(t *testing.T, c *config.Config, n int) {
			raw, err := sql.Open("pgx", c.DatabaseURL)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			// The rows and the chain's head go back together, as they were
			// committed together.
			tx, err := raw.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }()
			for _, q := range []string{
				`DELETE FROM audit WHERE seq > (SELECT MAX(seq) FROM audit) - $1`,
				`UPDATE audit_chains SET records = records - $1, head = (SELECT encode(hash, 'hex') FROM audit ORDER BY seq DESC LIMIT 1)`,
			} {
				if _, err := tx.Exec(q, n); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
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
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			agent, err := r.admin.CreateAgent(ctx, api.CreateAgentRequest{Name: "reader-1", TrustTier: "verified", Tags: []string{"reader"}})
			if err != nil {
				t.Fatal(err)
			}
			as := r.admin.WithAgentToken(agent.Token)
			checks := func(n int) {
				for range n {
					if d, err := as.Check(ctx, api.CheckRequest{Action: "read:docs"}); err != nil || !d.Allowed {
						t.Fatalf("check: %+v %v", d, err)
					}
				}
			}
			stored := func(n int) func() bool {
				return func() bool {
					p, err := r.admin.QueryAudit(ctx, client.AuditFilter{Action: "read:docs"})
					return err == nil && len(p.Records) == n
				}
			}
			checks(3)
			eventually(t, "the first records stored", stored(3))
			b.lose(t, r.cfg, 2)
			checks(2) // the writer finds the loss at its next write
			eventually(t, "the gap alert", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, a := range alerts {
					if a.Trigger == alert.TriggerError && a.Severity == alert.SeverityCritical && strings.Contains(a.Message, "lost records") {
						return true
					}
				}
				return false
			})
			eventually(t, "the gap counted", func() bool { return strings.Contains(scrape(t, r), "meshguard_audit_gaps 1\n") })
			eventually(t, "the later records stored", stored(3))
		})
	}
}
