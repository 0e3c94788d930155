package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/store"
)

// shadowFlags are policy shadow's options.
type shadowFlags struct {
	since, until, policy, dataDir, databaseURL string
	examples                                   int
}

func (a *app) policyShadowCmd() *cobra.Command {
	var f shadowFlags
	cmd := &cobra.Command{
		Use:   "shadow",
		Short: "Report where shadow policies disagreed with the policies in force",
		Long: "Reads the audit records of the period that carry a shadow answer (a shadow policy, mode:\n" +
			"shadow, would have decided otherwise) and groups them by shadow policy, rule and direction\n" +
			"(allow→deny, deny→allow, allow→approve, …), with counts and examples (record id, trace id,\n" +
			"agent, action, resource). By default the server's trail is read (GET /admin/audit/export\n" +
			"?shadow=true); with --data-dir or --database-url this command reads the store itself.",
		Example: "  meshguard policy shadow\n" +
			"  meshguard policy shadow --since 168h --policy strict-mail --json\n" +
			"  meshguard policy shadow --data-dir /var/lib/meshguard --since 2026-03-02 --until 2026-03-03",
		Args: exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.runPolicyShadow(cmd.Context(), &f)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.since, "since", "24h", "records from this time: RFC 3339, a date (2026-03-02, UTC) or an age (24h)")
	fl.StringVar(&f.until, "until", "", "records before this time, in the same forms (default now)")
	fl.StringVar(&f.policy, "policy", "", "only this shadow policy's disagreements")
	fl.IntVar(&f.examples, "examples", audit.DefaultShadowExamples, fmt.Sprintf("examples shown per group (at most %d)", audit.MaxShadowExamples))
	fl.StringVar(&f.dataDir, "data-dir", "", "read the SQLite store in this DATA_DIR directly, not through the server")
	fl.StringVar(&f.databaseURL, "database-url", "", "read this PostgreSQL database directly, not through the server")
	return cmd
}

func (a *app) runPolicyShadow(ctx context.Context, f *shadowFlags) error {
	switch {
	case f.dataDir != "" && f.databaseURL != "":
		return usageErr("--data-dir and --database-url: give one")
	case f.examples < 1 || f.examples > audit.MaxShadowExamples:
		return usageErr("--examples: %d: expected 1 to %d", f.examples, audit.MaxShadowExamples)
	}
	now := time.Now()
	from, err := parseWhen("--since", f.since, now)
	if err != nil {
		return err
	}
	to, err := parseWhen("--until", f.until, now)
	if err != nil {
		return err
	}
	if to.IsZero() {
		to = now
	}
	if !from.IsZero() && !from.Before(to) {
		return usageErr("--since must be before --until")
	}
	rp := audit.NewShadowReporter(f.policy, f.examples)
	add := func(r *audit.Record) { rp.Add(r) }
	if f.dataDir != "" || f.databaseURL != "" {
		err = a.shadowOffline(ctx, f, store.AuditFilter{Shadow: true, From: from, To: to}, add)
	} else {
		err = a.shadowOnline(ctx, client.AuditFilter{Shadow: true, From: from, To: to}, add)
	}
	if err != nil {
		return err
	}
	rep := rp.Report(from, to)
	if a.g.json {
		return a.printJSON(rep)
	}
	a.printShadow(&rep)
	return nil
}

// shadowOffline streams the store's records of the period.
func (a *app) shadowOffline(ctx context.Context, f *shadowFlags, filter store.AuditFilter, add func(*audit.Record)) error {
	var trail interface {
		ScanAuditFiltered(ctx context.Context, f store.AuditFilter, fn func(r audit.Record, cursor string) error) error
		Close() error
	}
	if f.dataDir != "" {
		path := filepath.Join(f.dataDir, "meshguard.db")
		if _, err := os.Stat(path); err != nil {
			return usageErr("--data-dir: %v", err)
		}
		s, err := store.OpenSQLite(ctx, path)
		if err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		trail = s
	} else {
		s, err := store.OpenPostgres(ctx, f.databaseURL)
		if err != nil {
			return fmt.Errorf("--database-url: %w", err)
		}
		trail = s
	}
	defer trail.Close()
	if err := trail.ScanAuditFiltered(ctx, filter, func(r audit.Record, _ string) error {
		add(&r)
		return nil
	}); err != nil {
		return fmt.Errorf("reading the audit trail: %w", err)
	}
	return nil
}

// shadowOnline streams the server's export of the records carrying a
// shadow answer (a JSON array), one record at a time.
func (a *app) shadowOnline(ctx context.Context, filter client.AuditFilter, add func(*audit.Record)) error {
	c, err := a.adminClient()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- decodeRecords(pr, add)
		// Unblocks the export if decoding stopped early.
		_ = pr.CloseWithError(errStopped)
	}()
	exportErr := c.ExportAudit(ctx, filter, "json", pw)
	_ = pw.CloseWithError(exportErr)
	decodeErr := <-done
	if exportErr != nil && !errors.Is(exportErr, errStopped) {
		return a.apiErr(exportErr)
	}
	if decodeErr != nil {
		return fmt.Errorf("reading the server's audit export: %w", decodeErr)
	}
	return nil
}

var errStopped = errors.New("stopped reading")

// decodeRecords reads a JSON array of records, one at a time.
func decodeRecords(r io.Reader, add func(*audit.Record)) error {
	dec := json.NewDecoder(r)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return fmt.Errorf("expected a JSON array: %v", err)
	}
	for dec.More() {
		var rec audit.Record
		if err := dec.Decode(&rec); err != nil {
			return err
		}
		add(&rec)
	}
	_, err := dec.Token()
	return err
}

// printShadow writes the report for people.
func (a *app) printShadow(rep *audit.ShadowReport) {
	span := rep.To.UTC().Format(time.RFC3339)
	if !rep.From.IsZero() {
		span = rep.From.UTC().Format(time.RFC3339) + " … " + span
	} else {
		span = "until " + span
	}
	who := "shadow policies"
	if rep.Policy != "" {
		who = "shadow policy " + printable(rep.Policy)
	}
	a.say("%s disagreed on %s (%s)", who, count(rep.Records, "record"), span)
	for _, g := range rep.Groups {
		rule := g.Policy + " (default or delegation check)"
		if g.Rule != "" {
			rule = g.Policy + "/" + g.Rule
		}
		a.say("%s→%s  %s  %s  %s", g.Enforced, g.Shadow, printable(rule), g.Reason, count(g.Count, "record"))
		for _, ex := range g.Examples {
			a.say("    %s  trace %s  %s  %s  %s", ex.ID, orDash(ex.TraceID), printable(orDash(ex.Agent)), printable(ex.Action), printable(ex.Resource))
		}
	}
	if rep.Ungrouped > 0 {
		a.say("%s in groups beyond the first %d, not shown", count(rep.Ungrouped, "record"), audit.MaxShadowGroups)
	}
}
