package console

import (
	"context"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
)

// The overview's chart: the last hour, a bar a minute, drawn on the server
// as SVG (no chart library, no script).
const (
	overviewMinutes = 60
	chartBarStep    = 12  // px per minute
	chartBarWidth   = 10  // px
	chartPlotHeight = 160 // px of the tallest bar
	rankBarWidth    = 360 // px of the longest ranking bar
	rankRowHeight   = 24  // px
	rankLabelRunes  = 40  // a longer key is cut, with an ellipsis
)

// minuteBar is one minute of the chart: the allowed part stacked on the
// denied part, both from the baseline up.
type minuteBar struct {
	X, AllowY, AllowH, DenyY, DenyH int
	Title                           string
}

// tick labels the time axis.
type tick struct {
	X     int
	Label string
}

// rankBar is one line of a ranking: the denied part first, then the rest.
type rankBar struct {
	Y, TextY, DenyW, RestW, RestX, CountX int
	Label, Title                          string
	Count                                 int64
}

// overviewData is the overview page.
type overviewData struct {
	From, To        time.Time
	Total, Allowed  int64
	Denied          int64
	Max             int64 // the tallest minute
	Width, Height   int   // the plot's width, the chart's height
	SVGWidth        int   // room for the last tick's label
	Bars            []minuteBar
	Ticks           []tick
	Reasons, Agents []rankBar
	ReasonsH        int
	AgentsH         int
}

// agentNamer names an agent by id, when the store can (store.SQLite,
// store.Postgres); the rankings show ids otherwise.
type agentNamer interface {
	GetAgent(ctx context.Context, id string) (identity.Agent, error)
}

// overview is GET /ui/overview: decisions per minute allowed/denied over
// the last hour, the top denial reasons and the top agents — two bounded,
// grouped store queries (at most 60 minute rows and 10 rows a ranking).
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	to := c.cfg.Now().UTC().Truncate(time.Minute).Add(time.Minute) // the current minute is the last bar
	from := to.Add(-overviewMinutes * time.Minute)
	minutes, err := c.cfg.Audit.AuditPerMinute(r.Context(), from, to)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	st, err := c.cfg.Audit.AuditStats(r.Context(), from, to)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	if namer, ok := c.cfg.Agents.(agentNamer); ok {
		for i := range st.Agents {
			if ag, err := namer.GetAgent(r.Context(), st.Agents[i].Key); err == nil && ag.Name != "" {
				st.Agents[i].Name = ag.Name
			}
		}
	}
	d := chartOf(from, minutes)
	d.To, d.Total, d.Allowed, d.Denied = to, st.Total, st.Allowed, st.Denied
	d.Reasons, d.ReasonsH = ranking(st.DenyReasons, false)
	d.Agents, d.AgentsH = ranking(st.Agents, true)
	c.render(w, r, http.StatusOK, "overview", view{Title: "Overview", Active: "overview", Data: d})
}

// chartOf lays out the minutes from from (sparse, oldest first) as bars
// scaled to the busiest minute; a minute without records has no bar.
func chartOf(from time.Time, minutes []audit.Minute) overviewData {
	d := overviewData{From: from, Width: overviewMinutes * chartBarStep, SVGWidth: overviewMinutes*chartBarStep + 40, Height: chartPlotHeight + 20}
	inHour := func(m audit.Minute) (int, bool) {
		i := int(m.Start.Sub(from) / time.Minute)
		return i, m.Start.Compare(from) >= 0 && i < overviewMinutes
	}
	for _, m := range minutes {
		if _, ok := inHour(m); ok {
			d.Max = max(d.Max, m.Allowed+m.Denied)
		}
	}
	scale := func(n int64) int {
		if n == 0 {
			return 0
		}
		return max(1, int(n*chartPlotHeight/d.Max)) // one record still shows
	}
	for _, m := range minutes {
		i, ok := inHour(m)
		if !ok {
			continue
		}
		deny := scale(m.Denied)
		allow := scale(m.Allowed+m.Denied) - deny
		d.Bars = append(d.Bars, minuteBar{X: i * chartBarStep, DenyY: chartPlotHeight - deny, DenyH: deny,
			AllowY: chartPlotHeight - deny - allow, AllowH: allow,
			Title: fmt.Sprintf("%s: %d allowed, %d denied", m.Start.UTC().Format("15:04"), m.Allowed, m.Denied)})
	}
	for i := 0; i <= overviewMinutes; i += 10 {
		d.Ticks = append(d.Ticks, tick{X: i * chartBarStep, Label: from.Add(time.Duration(i) * time.Minute).UTC().Format("15:04")})
	}
	return d
}

// ranking lays out one ranking of AuditStats as bars scaled to its first
// (largest) entry, and returns the height it takes.
func ranking(counts []audit.Count, named bool) ([]rankBar, int) {
	const labelW = 300
	var out []rankBar
	var top int64 = 1
	for _, c := range counts {
		top = max(top, c.Total)
	}
	for i, c := range counts {
		key := c.Key
		if key == "" {
			// A request refused before it named an agent is recorded
			// without one; an empty label would draw a bar with no name.
			key = "(none)"
			if named {
				key = "(no agent)"
			}
		}
		label := key
		if named && c.Name != "" {
			label = c.Name
		}
		if utf8.RuneCountInString(label) > rankLabelRunes {
			label = string([]rune(label)[:rankLabelRunes-1]) + "…"
		}
		total := int(c.Total * rankBarWidth / top)
		deny := int(c.Denied * rankBarWidth / top)
		b := rankBar{Y: i * rankRowHeight, TextY: i*rankRowHeight + 16, DenyW: deny, RestX: labelW + deny, RestW: total - deny,
			CountX: labelW + total + 6, Label: label, Count: c.Total,
			Title: fmt.Sprintf("%s: %d decisions, %d denied", key, c.Total, c.Denied)}
		out = append(out, b)
	}
	return out, max(1, len(out)) * rankRowHeight
}
