package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/replay"
	"github.com/meshguard/meshguard/store"
)

// replayFlags are policy replay's options.
type replayFlags struct {
	policies, since, until, agent, action, failOn, dataDir, databaseURL string
	examples                                                            int
}

func (a *app) policyReplayCmd() *cobra.Command {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay --policies DIR",
		Short: "Decide the recorded requests again with candidate policies and report what would change",
		Long: "Reads the audit trail, oldest first, and decides each recorded policy decision again with\n" +
			"the candidate policies (the whole set under --policies, not a change to the set in force):\n" +
			"at the record's own time, with the agent's tier, tags and chain as recorded. It reports\n" +
			"the allow→deny and deny→allow changes grouped by the rule before and after, with\n" +
			"examples and trace ids, and the records it could not decide again (a redacted or\n" +
			"unrecorded value) with why. Only the policies are decided again: token validity, a\n" +
			"route's tier minimum, the delegation token's chain cap, the hand-off rule and rate limits\n" +
			"are not. By default the server reads its trail (POST /admin/policies/replay); with\n" +
			"--data-dir or --database-url this command reads the store itself. Exit code 1 with\n" +
			"--fail-on when a change of a named kind is found.",
		Example: "  meshguard policy replay --policies ./candidate --since 168h\n" +
			"  meshguard policy replay --policies ./candidate --since 24h --fail-on allow-to-deny --json\n" +
			"  meshguard policy replay --policies ./candidate --data-dir /var/lib/meshguard --agent emailer",
		Args: exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.runPolicyReplay(cmd.Context(), cmd, &f)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.policies, "policies", "", "the candidate policies: a file or a directory (required)")
	fl.StringVar(&f.since, "since", "", "records from this time: RFC 3339, a date (2026-03-02, UTC) or an age (24h)")
	fl.StringVar(&f.until, "until", "", "records before this time, in the same forms")
	fl.StringVar(&f.agent, "agent", "", "only this agent's records (id or name)")
	fl.StringVar(&f.action, "action", "", "only records whose action matches this pattern (read:*)")
	fl.StringVar(&f.failOn, "fail-on", "", "exit 1 when a change of these kinds is found (comma-separated): "+strings.Join(api.ReplayKinds, ", "))
	fl.IntVar(&f.examples, "examples", replay.DefaultExamples, fmt.Sprintf("examples shown per group of changes (at most %d)", replay.MaxExamples))
	fl.StringVar(&f.dataDir, "data-dir", "", "read the SQLite store in this DATA_DIR directly, not through the server")
	fl.StringVar(&f.databaseURL, "database-url", "", "read this PostgreSQL database directly, not through the server")
	return cmd
}

func (a *app) runPolicyReplay(ctx context.Context, cmd *cobra.Command, f *replayFlags) error {
	switch {
	case f.policies == "":
		return usageErr("--policies: required (the candidate policies)")
	case f.dataDir != "" && f.databaseURL != "":
		return usageErr("--data-dir and --database-url: give one")
	case f.examples < 0 || f.examples > replay.MaxExamples:
		return usageErr("--examples: %d: expected 0 to %d", f.examples, replay.MaxExamples)
	}
	var failOn []string
	if f.failOn != "" {
		kinds, err := csvFields(f.failOn, strings.Join(api.ReplayKinds, ", "))
		if err != nil {
			return usageErr("--fail-on: %v", err)
		}
		for _, k := range kinds {
			k = strings.TrimSpace(k)
			if !slices.Contains(api.ReplayKinds, k) {
				return usageErr("--fail-on: %q: expected one of %s", k, strings.Join(api.ReplayKinds, ", "))
			}
			failOn = append(failOn, k)
		}
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
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return usageErr("--since must be before --until")
	}
	opts := replay.Options{Agent: f.agent, Action: f.action, Examples: f.examples}
	var rep api.PolicyReplayReport
	if f.dataDir != "" || f.databaseURL != "" {
		rep, err = a.replayOffline(ctx, cmd, f, opts, store.AuditFilter{From: from, To: to})
	} else {
		rep, err = a.replayOnline(ctx, f, api.PolicyReplayRequest{From: from, To: to, Agent: f.agent, Action: f.action, Examples: f.examples})
	}
	if err != nil {
		return err
	}
	if a.g.json {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		a.printReplay(&rep)
	}
	if rep.Failed(failOn) {
		return &ExitError{Code: ExitFailure}
	}
	return nil
}

// replayOffline loads the candidate set here and streams the store's
// records through it.
func (a *app) replayOffline(ctx context.Context, cmd *cobra.Command, f *replayFlags, opts replay.Options, filter store.AuditFilter) (api.PolicyReplayReport, error) {
	set, err := loadPolicies(cmd, f.policies)
	var list policy.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintf(a.Stderr, "✗ %v\n", e)
		}
		return api.PolicyReplayReport{}, &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s in the candidate policies", count(len(list), "error"))}
	} else if err != nil {
		return api.PolicyReplayReport{}, err
	}
	rp, err := replay.New(set, opts)
	if err != nil {
		return api.PolicyReplayReport{}, usageErr("%v", err)
	}
	var trail interface {
		ScanAuditFiltered(ctx context.Context, f store.AuditFilter, fn func(r audit.Record, cursor string) error) error
		Close() error
	}
	if f.dataDir != "" {
		path := filepath.Join(f.dataDir, "meshguard.db")
		if _, err := os.Stat(path); err != nil {
			return api.PolicyReplayReport{}, usageErr("--data-dir: %v", err)
		}
		s, err := store.OpenSQLite(ctx, path)
		if err != nil {
			return api.PolicyReplayReport{}, fmt.Errorf("--data-dir: %w", err)
		}
		trail = s
	} else {
		s, err := store.OpenPostgres(ctx, f.databaseURL)
		if err != nil {
			return api.PolicyReplayReport{}, fmt.Errorf("--database-url: %w", err)
		}
		trail = s
	}
	defer trail.Close()
	if err := trail.ScanAuditFiltered(ctx, filter, func(rec audit.Record, _ string) error {
		rp.Add(&rec)
		return nil
	}); err != nil {
		return api.PolicyReplayReport{}, fmt.Errorf("reading the audit trail: %w", err)
	}
	return rp.Report(), nil
}

// replayOnline sends the candidate files to the server, which streams its
// trail through them.
func (a *app) replayOnline(ctx context.Context, f *replayFlags, req api.PolicyReplayRequest) (api.PolicyReplayReport, error) {
	files, err := readPolicyFiles(f.policies)
	if err != nil {
		return api.PolicyReplayReport{}, err
	}
	req.Files = files
	c, err := a.adminClient()
	if err != nil {
		return api.PolicyReplayReport{}, err
	}
	rep, err := c.ReplayPolicies(ctx, req)
	if err != nil {
		return api.PolicyReplayReport{}, a.apiErr(err)
	}
	return rep, nil
}

// printReplay writes the report for people.
func (a *app) printReplay(rep *api.PolicyReplayReport) {
	span := ""
	if !rep.From.IsZero() {
		span = fmt.Sprintf(" (%s … %s)", rep.From.UTC().Format(time.RFC3339), rep.To.UTC().Format(time.RFC3339))
	}
	a.say("replayed %s against revision %s%s", count(rep.Records, "record"), rep.Revision, span)
	a.say("  %d decided again: %d unchanged, %d allow→deny, %d deny→allow", rep.Redecided, rep.Unchanged, rep.AllowToDeny, rep.DenyToAllow)
	if n := rep.AllowToApprove + rep.ApproveToAllow + rep.DenyToApprove + rep.ApproveToDeny; n > 0 {
		a.say("  held for approval: %d allow→approve, %d approve→allow, %d deny→approve, %d approve→deny",
			rep.AllowToApprove, rep.ApproveToAllow, rep.DenyToApprove, rep.ApproveToDeny)
	}
	for _, n := range rep.NotRedecided {
		a.say("  %d not decided again: %s (%s)", n.Count, n.Why, strings.Join(n.IDs, ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(rep.Skipped)) {
		a.say("  %d skipped: %s", rep.Skipped[k], k)
	}
	for _, g := range rep.Changes {
		arrow := g.Old.Decision + "→" + g.New.Decision
		a.say("%s  %s → %s  %s", arrow, ruleName(g.Old), ruleName(g.New), count(g.Count, "record"))
		for _, ex := range g.Examples {
			a.say("    %s  trace %s  %s  %s  %s  %s → %s", ex.ID, orDash(ex.TraceID), printable(ex.Agent), printable(ex.Action),
				printable(ex.Resource), ex.OldReason, ex.NewReason)
		}
	}
	if rep.OutsideGroups > 0 {
		a.say("%s changed outside the groups shown (a report holds at most %d groups)", count(rep.OutsideGroups, "record"), len(rep.Changes))
	}
	a.say("not decided again by replay: %s", strings.Join(rep.NotReplayed, ", "))
}

func ruleName(o api.PolicyReplayOutcome) string {
	switch {
	case o.Policy == "":
		return "(no policy)"
	case o.Rule == "":
		return o.Policy + " (default)"
	}
	return o.Policy + "/" + o.Rule
}
