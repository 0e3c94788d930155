package cli

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/xds"
)

func (a *app) xdsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "xds",
		Short: "See what the xDS server sent each connected Envoy",
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Each connected node: the versions it ACKed, its last NACK; and the nodes gone lately",
		Args:  exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			st, err := c.XDSStatus(cmd.Context())
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(st)
			}
			a.say("current version: %s, %s, %d recently gone", orDash(st.Version), count(len(st.Nodes), "node"), len(st.Gone))
			rows := make([][]string, 0, len(st.Nodes))
			for _, n := range st.Nodes {
				rows = append(rows, []string{printable(n.ID), printable(orDash(n.Cluster)), strconv.Itoa(n.Streams),
					n.LastSeen.UTC().Format(time.RFC3339), acked(n), lastNack(n)})
			}
			if len(rows) > 0 {
				a.table([]string{"NODE", "CLUSTER", "STREAMS", "LAST SEEN", "ACKED", "LAST NACK"}, rows)
			}
			rows = rows[:0]
			for _, n := range st.Gone {
				rows = append(rows, []string{printable(n.ID), printable(orDash(n.Cluster)), n.Left.UTC().Format(time.RFC3339), acked(n), lastNack(n)})
			}
			if len(rows) > 0 {
				a.say("\nrecently gone (the last %d, latest first):", xds.MaxGone)
				a.table([]string{"NODE", "CLUSTER", "LEFT", "ACKED", "LAST NACK"}, rows)
			}
			return nil
		}),
	})
	return cmd
}

// acked lists the versions a node ACKed, by resource type.
func acked(n xds.NodeStatus) string {
	types := make([]string, 0, len(n.Acked))
	for t, v := range n.Acked {
		types = append(types, printable(t)+"="+printable(v))
	}
	sort.Strings(types)
	return orDash(strings.Join(types, " "))
}

// lastNack is when a node last refused a configuration, and why.
func lastNack(n xds.NodeStatus) string {
	if n.LastNack == nil {
		return "-"
	}
	return n.LastNack.At.UTC().Format(time.RFC3339) + " " + printable(n.LastNack.Type) + ": " + printable(n.LastNack.Error)
}
