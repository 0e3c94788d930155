package cli

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/client"
)

// approvalsCmd is `meshguard approvals` (docs/cli.md, docs/governance.md):
// list, show, approve and deny human approvals on a running server.
func (a *app) approvalsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "approvals",
		Short: "List, show, approve and deny human approvals on the server",
		Long: "Answers the requests that policies with effect: approve hold for a person, through\n" +
			"the admin API (--gateway, --admin-token). The agent that asked is allowed once its\n" +
			"approval is approved, for exactly the request it made.",
	})
	cmd.AddCommand(a.approvalsListCmd(), a.approvalsShowCmd(), a.approvalsDecideCmd(true), a.approvalsDecideCmd(false))
	return cmd
}

func (a *app) approvalsListCmd() *cobra.Command {
	var (
		status, agent, before string
		limit                 int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List approvals, newest first",
		Example: "  meshguard approvals list --status pending\n" +
			"  meshguard approvals list --agent emailer --json",
		Args: exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if limit < 0 || limit > 1000 {
				return usageErr("--limit: %d: expected 1 to 1000", limit)
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			f := client.ApprovalFilter{Status: status, Before: before, Limit: limit}
			if agent != "" {
				// A name or an id: the server filters by id.
				ag, err := c.GetAgent(cmd.Context(), agent)
				if err != nil {
					return a.apiErr(err)
				}
				f.AgentID = ag.ID
			}
			list, err := c.ListApprovals(cmd.Context(), f)
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(list)
			}
			if len(list.Approvals) == 0 {
				a.say("no approvals")
				return nil
			}
			rows := make([][]string, 0, len(list.Approvals))
			for _, ap := range list.Approvals {
				rows = append(rows, []string{ap.ID, ap.Status, printable(orDash(ap.AgentName)), printable(ap.Action),
					printable(orDash(ap.Resource)), ap.CreatedAt.Format(time.RFC3339), printable(orDash(ap.DecidedBy))})
			}
			a.table([]string{"ID", "STATUS", "AGENT", "ACTION", "RESOURCE", "CREATED", "DECIDED BY"}, rows)
			if list.Next != "" {
				a.say("more: --before %s", list.Next)
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&status, "status", "", "only these: pending, approved, denied, expired or used")
	fl.StringVar(&agent, "agent", "", "only the approvals this agent (id or name) asked for")
	fl.StringVar(&before, "before", "", "the next page: the id the previous page ended with")
	fl.IntVar(&limit, "limit", 0, "at most this many (1 to 1000; the server's default 100)")
	return cmd
}

func (a *app) approvalsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Show one approval: the request, its state, who decided",
		Example: "  meshguard approvals show apr_01a24bdd72b1a9199a128f5f697bc0a56924f55d",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			ap, err := c.GetApproval(cmd.Context(), args[0])
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(ap)
			}
			a.showApproval(ap)
			return nil
		}),
	}
}

// showApproval prints an approval as a person decides on it: every value
// the request carried goes through printable (an agent chose them).
func (a *app) showApproval(ap api.Approval) {
	kvs := [][2]string{
		{"id", ap.ID},
		{"status", ap.Status},
		{"agent", printable(ap.AgentName) + " (" + ap.AgentID + ")"},
		{"chain", printable(orDash(strings.Join(ap.Chain, " → ")))},
		{"action", printable(ap.Action)},
		{"resource", printable(orDash(ap.Resource))},
	}
	if ap.Method != "" || ap.Name != "" {
		kvs = append(kvs, [2]string{"call", printable(strings.TrimSpace(ap.Method + " " + ap.Name))})
	}
	// All else the approval is bound to, redacted as the trail redacts:
	// the query, the context, the arguments, an A2A request's message.
	shown := approval.Shown{Query: ap.Query, Context: ap.Context, Arguments: ap.Arguments, ArgumentsDigest: ap.ArgumentsDigest,
		Params: ap.Params, ParamsDigest: ap.ParamsDigest, Omitted: ap.Omitted}
	for _, l := range shown.Lines() {
		kvs = append(kvs, [2]string{strings.ToLower(l[0]), printable(l[1])})
	}
	use := "once"
	if ap.TTL != "" {
		use = "until " + ap.TTL + " after the approval"
	}
	kvs = append(kvs,
		[2]string{"policy", printable(ap.Policy) + ", rule " + printable(ap.Rule)},
		[2]string{"approvers", printable(orDash(strings.Join(ap.Approvers, ", ")))},
		[2]string{"use", use},
		[2]string{"created", ap.CreatedAt.Format(time.RFC3339)},
		[2]string{"expires", ap.ExpiresAt.Format(time.RFC3339)},
	)
	if ap.DecidedAt != nil {
		kvs = append(kvs, [2]string{"decided", printable(ap.DecidedBy) + " at " + ap.DecidedAt.Format(time.RFC3339)})
	}
	if ap.Reason != "" {
		kvs = append(kvs, [2]string{"reason", printable(ap.Reason)})
	}
	if ap.Uses != nil {
		kvs = append(kvs, [2]string{"uses", strconv.Itoa(*ap.Uses)})
	}
	kvs = append(kvs, [2]string{"trace", ap.TraceID}, [2]string{"decision", ap.DecisionID})
	a.keyValues(kvs)
}

// approvalsDecideCmd is `approvals approve` (approve true) or `approvals deny`.
func (a *app) approvalsDecideCmd(approve bool) *cobra.Command {
	var by, reason string
	use, short, example := "approve ID", "Approve a pending approval: the agent's retry of exactly that request is allowed",
		`  meshguard approvals approve apr_01a24bdd72b1a9199a128f5f697bc0a56924f55d --by alice --reason "ticket 4711"`
	if !approve {
		use, short, example = "deny ID", "Deny a pending approval: the agent's retries are refused (approval_denied)",
			`  meshguard approvals deny apr_01a24bdd72b1a9199a128f5f697bc0a56924f55d --by alice --reason "not to outsiders"`
	}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    short + ".\n--by names who decides, as the audit trail records it (default: $USER).",
		Example: example,
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if by == "" {
				by = a.Getenv("USER")
			}
			if strings.TrimSpace(by) == "" {
				return usageErr("--by: required (who decides; $USER is not set)")
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			ap, err := c.DecideApproval(cmd.Context(), args[0], approve, api.ApprovalDecision{By: by, Reason: reason})
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(ap)
			}
			a.say("%s %s by %s (agent %s, %s %s)", ap.ID, ap.Status, printable(ap.DecidedBy), printable(orDash(ap.AgentName)),
				printable(ap.Action), printable(orDash(ap.Resource)))
			return nil
		}),
	}
	cmd.Flags().StringVar(&by, "by", "", "who decides (default: $USER)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail and the agent")
	return cmd
}
