package cli

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) auditDeadLetterCmd() *cobra.Command {
	var limit int
	var cursor string
	cmd := &cobra.Command{
		Use:   "deadletter",
		Short: "List the records the store refused as data, kept outside the hash chain",
		Long: "A record the audit store refuses as data (a constraint, a value it cannot store) is\n" +
			"retried alone a few times, then kept as a dead letter: outside the hash chain, which goes\n" +
			"on without it, with a critical alert. This lists them, newest first; --json prints each\n" +
			"record's canonical JSON and the store's error. `audit verify` fails while any exist.",
		Example: "  meshguard audit deadletter\n  meshguard audit deadletter --json",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 1000 {
				return usageErr("-n: %d: expected 1 to 1000", limit)
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			page, err := c.AuditDeadLetters(cmd.Context(), limit, cursor)
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(page)
			}
			rows := make([][]string, 0, len(page.DeadLetters))
			for _, d := range page.DeadLetters {
				rows = append(rows, []string{d.DeadAt.UTC().Format(time.RFC3339), printable(d.ID), d.Timestamp.UTC().Format(time.RFC3339Nano),
					printable(orDash(d.Chain)), strconv.Itoa(d.Attempts), printable(d.Error)})
			}
			if len(rows) == 0 {
				a.say("no dead letters: the store has taken every record")
				return nil
			}
			a.table([]string{"DEAD AT", "ID", "RECORD TIME", "CHAIN", "ATTEMPTS", "ERROR"}, rows)
			if page.NextCursor != "" {
				a.note("more: add --cursor %s", page.NextCursor)
			}
			return nil
		}),
	}
	cmd.Flags().IntVarP(&limit, "lines", "n", 100, "how many to list")
	cmd.Flags().StringVar(&cursor, "cursor", "", "list those older than this cursor (from a previous listing)")
	return cmd
}
