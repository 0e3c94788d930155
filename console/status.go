package console

import (
	"context"
	"net/http"
	"sort"

	"github.com/meshguard/meshguard/api"
)

// AlertsStatus is alerting as GET /admin/alerts shows it (the server's
// alertsAdmin, through admin.API.Alerts).
type AlertsStatus interface {
	Status(ctx context.Context) (api.AlertsStatus, error)
}

// XDSStatus is the xDS server's view of its nodes (xds.Server), as GET
// /admin/xds/status shows it.
type XDSStatus interface {
	Status() api.XDSStatus
}

// providerRow is one alert provider and its undelivered alerts.
type providerRow struct {
	api.AlertProvider
	Pending int
}

// alertsData is the alerts page.
type alertsData struct {
	S         api.AlertsStatus
	Providers []providerRow
}

// alerts is GET /ui/alerts: the triggers, the providers (where each sends,
// no secret) and how many alerts each has not delivered yet.
func (c *Console) alerts(w http.ResponseWriter, r *http.Request) {
	st, err := c.cfg.Alerts.Status(r.Context())
	if err != nil {
		c.log.Error("console: reading the alert outbox", "error", err)
		c.problem(w, r, http.StatusServiceUnavailable, "Unavailable", "The alert outbox cannot be read; try again.")
		return
	}
	d := alertsData{S: st}
	for _, p := range st.Providers {
		d.Providers = append(d.Providers, providerRow{AlertProvider: p, Pending: st.Pending[p.Name]})
	}
	c.render(w, r, http.StatusOK, "alerts", view{Title: "Alerts", Active: "alerts", Data: d})
}

// xdsNodeRow is one node with its ACKed versions in a stable order.
type xdsNodeRow struct {
	api.XDSNode
	Types []ackRow
}

type ackRow struct{ Type, Version string }

func xdsRows(nodes []api.XDSNode) []xdsNodeRow {
	out := make([]xdsNodeRow, 0, len(nodes))
	for _, n := range nodes {
		row := xdsNodeRow{XDSNode: n}
		for t, v := range n.Acked {
			row.Types = append(row.Types, ackRow{t, v})
		}
		sort.Slice(row.Types, func(i, j int) bool { return row.Types[i].Type < row.Types[j].Type })
		out = append(out, row)
	}
	return out
}

// xdsData is the xDS page.
type xdsData struct {
	Version     string
	Nodes, Gone []xdsNodeRow
}

// xds is GET /ui/xds: the snapshot version, the connected nodes with what
// each ACKed and its last NACK, and the nodes that left.
func (c *Console) xds(w http.ResponseWriter, r *http.Request) {
	st := c.cfg.XDS.Status()
	c.render(w, r, http.StatusOK, "xds", view{Title: "xDS status", Active: "xds",
		Data: xdsData{Version: st.Version, Nodes: xdsRows(st.Nodes), Gone: xdsRows(st.Gone)}})
}
