package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store/pgtest"
)

const delegatorPolicy = `name: delegators
appliesTo: {tags: [delegator]}
rules:
  - {name: reads, effect: allow, actions: ["read:*"]}
delegation: {maxDepth: 1}
`

// TestDelegationInputIsTextChecked: POST /v1/delegations holds the
// delegate and the actions to the text rule every other field of a
// decision is held to, on both stores. A NUL in the delegate reached
// PostgreSQL, which refused the lookup: the caller got a 503 (an engine
// failure, raised as one) and the attempt left no audit record. A control
// character in an action was minted into the token's scope while the audit
// record showed U+FFFD in its place. Each is now a 400 naming the field,
// minting nothing, with one record of the refusal.
func TestDelegationInputIsTextChecked(t *testing.T) {
	stores := []struct {
		name string
		use  func(t *testing.T, c *config.Config)
	}{
		{"sqlite", func(*testing.T, *config.Config) {}},
		{"postgres", func(t *testing.T, c *config.Config) { c.DatabaseURL = pgtest.NewDatabase(t) }},
	}
	inputs := []struct {
		name     string
		delegate string
		actions  []string
		field    string
	}{
		{"NUL in a delegate name", "read\x00er", []string{"read:*"}, "delegate"},
		{"NUL in a delegate id", "agent_\x00", []string{"read:*"}, "delegate"},
		{"ESC in an action", "reader", []string{"read:\x1b[2Jdocs"}, "actions[0]"},
		{"DEL in an action", "reader", []string{"read:*", "read:x\x7f"}, "actions[1]"},
		{"NUL in an action", "reader", []string{"read:\x00"}, "actions[0]"},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			r := start(t, func(c *config.Config) {
				st.use(t, c)
				writePolicy(t, c, "delegators.yaml", delegatorPolicy)
			})
			boss := r.agent(t, "boss", "delegator")
			r.agent(t, "reader", "reader")
			for i, in := range inputs {
				t.Run(in.name, func(t *testing.T) {
					body, err := json.Marshal(api.DelegationRequest{Delegate: in.delegate, Actions: in.actions})
					if err != nil {
						t.Fatal(err)
					}
					req, err := http.NewRequest(http.MethodPost, "http://"+r.addrs.HTTP+"/v1/delegations", bytes.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Authorization", "Bearer "+boss)
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					var got api.ErrorBody
					if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode != http.StatusBadRequest || got.Error != "bad_request" || !strings.Contains(got.Message, in.field+":") || !strings.Contains(got.Message, "control character") {
						t.Fatalf("%d %+v; want a 400 naming %s and the control character", resp.StatusCode, got, in.field)
					}
					// Audit records are written in groups after the answer:
					// wait for this attempt's (the i+1th refusal).
					eventually(t, "the refusal's audit record", func() bool {
						page, err := r.admin.QueryAudit(context.Background(), client.AuditFilter{Action: "delegate:*", Decision: "deny", Limit: 100})
						return err == nil && len(page.Records) == i+1
					})
				})
			}
			page, err := r.admin.QueryAudit(context.Background(), client.AuditFilter{Action: "delegate:*", Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range page.Records {
				if rec.Decision != "deny" || rec.Status != http.StatusBadRequest {
					t.Errorf("record %+v; want only 400 refusals", rec)
				}
			}
		})
	}
}
