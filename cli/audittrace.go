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

// traceNode is one agent in a delegation tree: the decisions it was the
// actor of, and the agents it delegated to.
type traceNode struct {
	id        string
	decisions []*audit.Record
	children  []*traceNode
	byID      map[string]*traceNode
}

func (n *traceNode) child(id string) *traceNode {
	if c, ok := n.byID[id]; ok {
		return c
	}
	c := &traceNode{id: id, byID: map[string]*traceNode{}}
	n.byID[id] = c
	n.children = append(n.children, c)
	return c
}

// writeTraceTree prints records (in the order written) as a forest: a
// record with chain [A, B, C] sits under C, under B, under A. Records
// without an agent (401s) sit at the top, as "unauthenticated".
func writeTraceTree(w io.Writer, traceID string, rs []audit.Record) {
	root := &traceNode{byID: map[string]*traceNode{}}
	names := map[string]string{}
	for i := range rs {
		r := &rs[i]
		if r.AgentID != "" && r.AgentName != "" {
			names[r.AgentID] = r.AgentName
		}
		n := root
		chain := r.Chain
		if len(chain) == 0 {
			chain = []string{r.AgentID} // "" groups the unauthenticated
		}
		for _, id := range chain {
			n = n.child(id)
		}
		n.decisions = append(n.decisions, r)
	}
	var first, last time.Time
	if len(rs) > 0 {
		first, last = rs[0].Timestamp, rs[len(rs)-1].Timestamp
	}
	fmt.Fprintf(w, "trace %s: %s over %s\n", traceID, count(len(rs), "decision"), last.Sub(first).Round(time.Millisecond))
	for i, c := range root.children {
		writeTraceNode(w, c, names, "", i == len(root.children)-1, true)
	}
}

func writeTraceNode(w io.Writer, n *traceNode, names map[string]string, indent string, last, top bool) {
	branch, next := "├─ ", "│  "
	if last {
		branch, next = "└─ ", "   "
	}
	label := "unauthenticated"
	if n.id != "" {
		label = n.id
		if name := names[n.id]; name != "" {
			label = name + " (" + n.id + ")"
		}
	}
	if !top {
		label = "delegated to " + label
	}
	fmt.Fprintf(w, "%s%s%s\n", indent, branch, printable(label))
	indent += next
	items := len(n.decisions) + len(n.children)
	for i, r := range n.decisions {
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
	for i, c := range n.children {
		writeTraceNode(w, c, names, indent, len(n.decisions)+i == items-1, false)
	}
}
