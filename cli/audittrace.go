package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/audit"
)

func (a *app) auditTraceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "trace TRACE_ID",
		Short: "Show one trace's decisions as a tree: who delegated to whom, and each decision",
		Long: "Prints every decision of the trace (the id in X-MeshGuard-Trace-Id and in Jaeger) under\n" +
			"the agent that made the call, each agent under the one that delegated to it.",
		Example: "  meshguard audit trace 4bf92f3577b34da6a3ce929d0e0e4736",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			tr, err := c.AuditTrace(cmd.Context(), args[0])
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(tr)
			}
			if !a.g.quiet {
				writeTraceTree(a.Stdout, tr.TraceID, tr.Records)
				if tr.Truncated {
					fmt.Fprintf(a.Stdout, "(only the first %s are shown)\n", count(len(tr.Records), "record"))
				}
			}
			return nil
		}),
	}
}

// writeTraceTree prints records (in the order written) as the forest
// audit.TraceTree builds.
func writeTraceTree(w io.Writer, traceID string, rs []audit.Record) {
	roots := audit.TraceTree(rs)
	var first, last time.Time
	if len(rs) > 0 {
		first, last = rs[0].Timestamp, rs[len(rs)-1].Timestamp
	}
	fmt.Fprintf(w, "trace %s: %s over %s\n", traceID, count(len(rs), "decision"), last.Sub(first).Round(time.Millisecond))
	for i, c := range roots {
		writeTraceNode(w, c, "", i == len(roots)-1, true)
	}
}

func writeTraceNode(w io.Writer, n *audit.TraceNode, indent string, last, top bool) {
	branch, next := "├─ ", "│  "
	if last {
		branch, next = "└─ ", "   "
	}
	label := "unauthenticated"
	if n.ID != "" {
		label = n.ID
		if n.Name != "" {
			label = n.Name + " (" + n.ID + ")"
		}
	}
	if !top {
		label = "delegated to " + label
	}
	fmt.Fprintf(w, "%s%s%s\n", indent, branch, printable(label))
	indent += next
	items := len(n.Decisions) + len(n.Children)
	for i, r := range n.Decisions {
		b := "├─ "
		if i == items-1 {
			b = "└─ "
		}
		why := r.Reason
		if r.Policy != "" {
			why += ", " + r.Policy + "/" + orDash(r.Rule)
		}
		target := ""
		if r.Host != "" {
			target = " → " + r.Host
		}
		fmt.Fprintf(w, "%s%s%s\n", indent, b, printable(fmt.Sprintf("%s %s%s%s (%s) %s %dµs", strings.ToUpper(r.Decision), r.Action, callNote(r.Call), target, why,
			r.Timestamp.UTC().Format("15:04:05.000"), r.LatencyUs)))
	}
	for i, c := range n.Children {
		writeTraceNode(w, c, indent, len(n.Decisions)+i == items-1, false)
	}
}
