package cli

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) xdsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "xds",
		Short: "See what the xDS server sent each connected Envoy",
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Each node: connected or not, the versions it ACKed, its last NACK",
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
			a.say("current version: %s, %d node(s)", orDash(st.Version), len(st.Nodes))
			rows := make([][]string, 0, len(st.Nodes))
			for _, n := range st.Nodes {
				types := make([]string, 0, len(n.Acked))
				for t, v := range n.Acked {
					types = append(types, t+"="+v)
				}
				sort.Strings(types)
				nack := "-"
				if n.LastNack != nil {
					nack = n.LastNack.At.UTC().Format(time.RFC3339) + " " + n.LastNack.Type + ": " + printable(n.LastNack.Error)
				}
				rows = append(rows, []string{printable(n.ID), printable(orDash(n.Cluster)), strconv.Itoa(n.Streams),
					n.LastSeen.UTC().Format(time.RFC3339), orDash(strings.Join(types, " ")), nack})
			}
			if len(rows) > 0 {
				a.table([]string{"NODE", "CLUSTER", "STREAMS", "LAST SEEN", "ACKED", "LAST NACK"}, rows)
			}
			return nil
		}),
	})
	return cmd
}
