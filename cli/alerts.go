package cli

import (
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/api"
)

// alertsStatus reads GET /admin/alerts.
func (a *app) alertsStatus(cmd *cobra.Command) (api.AlertsStatus, error) {
	c, err := a.adminClient()
	if err != nil {
		return api.AlertsStatus{}, err
	}
	st, err := c.Alerts(cmd.Context())
	if err != nil {
		return api.AlertsStatus{}, a.apiErr(err)
	}
	return st, nil
}

// alertsCmd is `meshguard alerts` (docs/alerting.md): what raises alerts, where they
// go, and a test through every provider.
func (a *app) alertsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "alerts",
		Short: "Alerting: its configuration, triggers and providers, and a test alert",
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "config",
		Short: "Triggers, providers, rate limit, and what waits in the outbox",
		Args:  exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			st, err := a.alertsStatus(cmd)
			if err != nil {
				return err
			}
			if a.g.json {
				return a.printJSON(st)
			}
			a.say("triggers:    %s", orDash(strings.Join(st.Triggers, ", ")))
			a.say("rate limit:  %d a minute (beyond it, one digest a minute)", st.RateLimit)
			a.say("instance:    %s", printable(orDash(strings.TrimSpace(st.Instance+" "+st.Environment))))
			rows := make([][]string, 0, len(st.Providers))
			for _, p := range st.Providers {
				rows = append(rows, []string{p.Name, printable(p.Target), strconv.Itoa(st.Pending[p.Name])})
			}
			if len(rows) == 0 {
				a.say("providers:   none (set ALERT_WEBHOOK_URL, ALERT_SLACK_WEBHOOK or ALERT_SMTP_HOST)")
				return nil
			}
			a.table([]string{"PROVIDER", "TARGET", "PENDING"}, rows)
			return nil
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "triggers",
		Short: "Each trigger and whether ALERT_ON turns it on",
		Args:  exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			st, err := a.alertsStatus(cmd)
			if err != nil {
				return err
			}
			if a.g.json {
				return a.printJSON(map[string]any{"triggers": st.Triggers})
			}
			var rows [][]string
			for _, t := range []struct{ name, when string }{
				{string(alert.TriggerDeny), "a request is denied (critical for privileged agents and admin:* actions)"},
				{string(alert.TriggerRateLimit), "a rate limit is exhausted (429)"},
				{string(alert.TriggerError), "MeshGuard cannot decide a request (the store, the audit trail): critical"},
			} {
				on := "off"
				if slices.Contains(st.Triggers, t.name) {
					on = "on"
				}
				rows = append(rows, []string{t.name, on, t.when})
			}
			a.table([]string{"TRIGGER", "ALERT_ON", "RAISED WHEN"}, rows)
			return nil
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "providers",
		Short: "The configured providers and where they send",
		Args:  exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			st, err := a.alertsStatus(cmd)
			if err != nil {
				return err
			}
			if a.g.json {
				return a.printJSON(st.Providers)
			}
			if len(st.Providers) == 0 {
				a.say("no alert provider is configured (ALERT_WEBHOOK_URL, ALERT_SLACK_WEBHOOK, ALERT_SMTP_HOST)")
				return nil
			}
			sort.Slice(st.Providers, func(i, j int) bool { return st.Providers[i].Name < st.Providers[j].Name })
			rows := make([][]string, 0, len(st.Providers))
			for _, p := range st.Providers {
				rows = append(rows, []string{p.Name, printable(p.Target)})
			}
			a.table([]string{"PROVIDER", "TARGET"}, rows)
			return nil
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "test",
		Short: "Send a clearly marked test alert through every provider now and report each result (exit 1 if one failed)",
		Args:  exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			res, err := c.TestAlerts(cmd.Context())
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				if err := a.printJSON(res); err != nil {
					return err
				}
			}
			if len(res) == 0 {
				return &ExitError{Code: 1, Err: errors.New("no alert provider is configured (ALERT_WEBHOOK_URL, ALERT_SLACK_WEBHOOK, ALERT_SMTP_HOST)")}
			}
			failed := 0
			for _, r := range res {
				if r.Delivered {
					if !a.g.json {
						a.say("✓ %s: delivered", r.Provider)
					}
					continue
				}
				failed++
				if !a.g.json {
					a.say("✗ %s: %s", r.Provider, printable(r.Error))
				}
			}
			if failed > 0 {
				return &ExitError{Code: 1, Err: errors.New(strconv.Itoa(failed) + " of " + strconv.Itoa(len(res)) + " providers did not take the test alert")}
			}
			return nil
		}),
	})
	return cmd
}
