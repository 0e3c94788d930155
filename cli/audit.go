package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/client"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "audit",
		Short: "Read and verify the audit trail: every decision, its chain and its trace",
	})
	cmd.AddCommand(a.auditTailCmd(), a.auditQueryCmd(), a.auditTraceCmd(), a.auditStatsCmd(), a.auditExportCmd(), a.auditVerifyCmd(), a.auditCheckpointCmd(), a.auditDeadLetterCmd())
	return cmd
}

// auditFlags are the filter flags of tail, query and export.
type auditFlags struct {
	agent, action, decision, trace, from, to string
}

func (f *auditFlags) register(cmd *cobra.Command, times bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.agent, "agent", "", "only this agent (id or name)")
	fl.StringVar(&f.action, "action", "", "only this action, or actions starting with a prefix ending in * (read:*)")
	fl.StringVar(&f.decision, "decision", "", "only allow or deny")
	fl.StringVar(&f.trace, "trace", "", "only this trace id")
	if times {
		fl.StringVar(&f.from, "from", "", "from this time: RFC 3339, a date (2026-03-02, UTC) or an age (24h, 30m)")
		fl.StringVar(&f.to, "to", "", "before this time, in the same forms")
	}
}

func (f *auditFlags) filter(now time.Time) (client.AuditFilter, error) {
	out := client.AuditFilter{Agent: f.agent, Action: f.action, Decision: f.decision, TraceID: f.trace}
	if f.decision != "" && f.decision != "allow" && f.decision != "deny" {
		return out, usageErr("--decision: %q: expected allow or deny", f.decision)
	}
	var err error
	if out.From, err = parseWhen("--from", f.from, now); err != nil {
		return out, err
	}
	if out.To, err = parseWhen("--to", f.to, now); err != nil {
		return out, err
	}
	return out, nil
}

// parseWhen reads a time as people type it: RFC 3339, a UTC date, or an
// age before now.
func parseWhen(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageErr("%s: %q: expected an RFC 3339 time, a date (2026-03-02) or an age (24h)", flag, v)
}

// printable shows s with control characters escaped: record fields come
// from callers, and an ESC sequence must not rewrite the operator's
// terminal (the engine refuses them; a record from elsewhere may not).
func printable(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// recordLine is one record as tail and follow print it.
func recordLine(r *audit.Record) string {
	who := orDash(r.AgentName)
	if len(r.Chain) > 1 {
		who += " (via " + strings.Join(r.Chain[:len(r.Chain)-1], " → ") + ")"
	}
	why := r.Reason
	if r.Policy != "" {
		why += " " + r.Policy + "/" + orDash(r.Rule)
	}
	return printable(fmt.Sprintf("%s  %-5s %d  %s  %s%s  %s%s  trace=%s", r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"),
		strings.ToUpper(r.Decision), r.Status, who, r.Action, callNote(r.Call), why, approvalNote(r.Approval), orDash(r.TraceID)))
}

// approvalNote is what a human approval adds to a record: its id and what
// the request came to (" approval=apr_… requested"); "" for none.
func approvalNote(a *audit.Approval) string {
	if a == nil || a.ID == "" {
		return ""
	}
	return "  approval=" + a.ID + " " + a.Outcome
}

// callNote is what an agent-protocol call adds to its action
// (call:mail/send_email already names the tool): the protocol, the
// JSON-RPC method and id, the A2A task — " [mcp tools/call id=7]"; "" for
// a record without a call.
func callNote(c *audit.Call) string {
	if c == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(" [" + c.Protocol + " " + c.Method)
	switch {
	case c.Notification:
		b.WriteString(" notification")
	case c.JSONRPCID != "":
		b.WriteString(" id=" + c.JSONRPCID)
	}
	if c.TaskID != "" {
		b.WriteString(" task=" + c.TaskID)
	}
	if c.HeaderOnly {
		b.WriteString(" header-only")
	}
	b.WriteString("]")
	return b.String()
}

func (a *app) printRecord(r *audit.Record) error {
	if a.g.json {
		return a.printJSONLine(r)
	}
	a.say("%s", recordLine(r))
	return nil
}

func (a *app) auditTailCmd() *cobra.Command {
	var f auditFlags
	var n int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the latest decisions, and with -f the new ones as they are made",
		Long: "Prints the last -n records, oldest first. With -f it then prints every new record, from\n" +
			"every replica, until interrupted. --json prints one JSON record a line.",
		Example: "  meshguard audit tail -n 50\n  meshguard audit tail -f --decision deny",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if n < 0 || n > 1000 {
				return usageErr("-n: %d: expected 0 to 1000", n)
			}
			flt, err := f.filter(time.Now())
			if err != nil {
				return err
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			after := ""
			// The follow starts from every chain's end as it was just
			// before the page: a record committed in between is in both,
			// and printed once.
			shown := map[string]bool{}
			if n > 0 || follow {
				flt.Limit = max(n, 1)
				page, err := c.QueryAudit(cmd.Context(), flt)
				if err != nil {
					return a.apiErr(err)
				}
				after = page.FollowCursor
				for i := min(n, len(page.Records)) - 1; i >= 0; i-- {
					shown[page.Records[i].ID] = true
					if err := a.printRecord(&page.Records[i]); err != nil {
						return err
					}
				}
			}
			if !follow {
				return nil
			}
			flt.Limit = 0
			err = c.FollowAudit(cmd.Context(), flt, after, func(l api.AuditLine) error {
				if shown[l.ID] {
					delete(shown, l.ID)
					return nil
				}
				return a.printRecord(&l.Record)
			})
			return a.apiErr(err)
		}),
	}
	f.register(cmd, false)
	cmd.Flags().IntVarP(&n, "lines", "n", 20, "how many of the latest records to print first")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records until interrupted")
	return cmd
}

func (a *app) auditQueryCmd() *cobra.Command {
	var f auditFlags
	var limit int
	var cursor string
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Find decisions by agent, action, decision, time or trace",
		Long: "Prints one page of matching records, newest first, and the --cursor that fetches the\n" +
			"page after it.",
		Example: "  meshguard audit query --agent researcher --decision deny --from 24h\n" +
			"  meshguard audit query --action 'write:*' --from 2026-03-02 --to 2026-03-03",
		Args: exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			flt, err := f.filter(time.Now())
			if err != nil {
				return err
			}
			flt.Limit, flt.Cursor = limit, cursor
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			page, err := c.QueryAudit(cmd.Context(), flt)
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(page)
			}
			rows := make([][]string, 0, len(page.Records))
			for _, r := range page.Records {
				rows = append(rows, []string{r.Timestamp.UTC().Format(time.RFC3339), strings.ToUpper(r.Decision), strconv.Itoa(r.Status),
					printable(orDash(r.AgentName)), printable(r.Action + callNote(r.Call)), orDash(r.Reason), printable(orDash(r.Policy)),
					strings.Join(r.Chain, ">"), orDash(r.TraceID)})
			}
			a.table([]string{"TIME", "DECISION", "STATUS", "AGENT", "ACTION", "REASON", "POLICY", "CHAIN", "TRACE"}, rows)
			if page.NextCursor != "" {
				a.note("more: add --cursor %s", page.NextCursor)
			}
			return nil
		}),
	}
	f.register(cmd, true)
	cmd.Flags().IntVar(&limit, "limit", 0, "records per page (default 100, at most 1000)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "the page after this cursor (printed by the previous page)")
	return cmd
}

func (a *app) auditStatsCmd() *cobra.Command {
	var period string
	cmd := &cobra.Command{
		Use:     "stats",
		Short:   "Count decisions over a period: totals, top agents, actions, denial reasons",
		Example: "  meshguard audit stats\n  meshguard audit stats --period 168",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			d, err := time.ParseDuration(period)
			if h, herr := strconv.Atoi(period); herr == nil {
				d, err = time.Duration(h)*time.Hour, nil
			}
			if err != nil || d <= 0 {
				return usageErr("--period: %q: expected hours (24) or a duration (90m)", period)
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			st, err := c.AuditStats(cmd.Context(), d)
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(st)
			}
			a.say("%s to %s: %s, %d allowed, %d denied", st.From.Format(time.RFC3339), st.To.Format(time.RFC3339), count(st.Total, "decision"), st.Allowed, st.Denied)
			for _, sec := range []struct {
				title string
				rows  []audit.Count
			}{{"AGENT", st.Agents}, {"ACTION", st.Actions}, {"DENIAL REASON", st.DenyReasons}, {"SOURCE", st.Sources}} {
				if len(sec.rows) == 0 {
					continue
				}
				a.say("")
				rows := make([][]string, 0, len(sec.rows))
				for _, r := range sec.rows {
					key := r.Key
					if r.Name != "" {
						key = r.Name + " (" + r.Key + ")"
					}
					rows = append(rows, []string{orDash(key), strconv.FormatInt(r.Total, 10), strconv.FormatInt(r.Denied, 10)})
				}
				a.table([]string{sec.title, "TOTAL", "DENIED"}, rows)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&period, "period", "24", "hours (or a duration like 90m) back from now")
	return cmd
}

func (a *app) auditExportCmd() *cobra.Command {
	var f auditFlags
	var format, output string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write matching records, oldest first, as CSV or JSON",
		Long: "Streams every matching record to stdout or --output (created 0600: the trail is\n" +
			"sensitive). The JSON export keeps each record's hashes, so it can be verified offline.",
		Example: "  meshguard audit export --from 2026-03-01 --to 2026-04-01 --format csv --output march.csv",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if format != "csv" && format != "json" {
				return usageErr("--format: %q: expected csv or json", format)
			}
			flt, err := f.filter(time.Now())
			if err != nil {
				return err
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			w := a.Stdout
			var file *os.File
			if output != "" {
				if file, err = os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
					return fmt.Errorf("--output: %w", err)
				}
				w = file
			}
			counted := newRecordCounter(w, format)
			err = c.ExportAudit(cmd.Context(), flt, format, counted)
			if file != nil {
				if cerr := file.Close(); err == nil && cerr != nil {
					err = fmt.Errorf("--output: %w", cerr)
				}
			}
			if err != nil {
				return a.apiErr(err)
			}
			// On stderr, so stdout stays the data.
			if output != "" {
				a.note("✓ exported %s to %s", count(counted.records(), "record"), output)
			} else {
				a.note("✓ exported %s", count(counted.records(), "record"))
			}
			return nil
		}),
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&format, "format", "json", "csv or json")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file (mode 0600) instead of stdout")
	return cmd
}
