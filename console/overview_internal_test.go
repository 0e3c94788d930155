package console

import (
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// TestChartOf: each minute's bar sits at its minute, is scaled to the
// busiest minute, stacks allowed on denied, and a single record still
// shows.
func TestChartOf(t *testing.T) {
	from := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(i int, allowed, denied int64) audit.Minute {
		return audit.Minute{Start: from.Add(time.Duration(i) * time.Minute), Allowed: allowed, Denied: denied}
	}
	type want struct{ x, allowY, allowH, denyY, denyH int }
	for _, tc := range []struct {
		name    string
		minutes []audit.Minute
		want    []want
	}{
		{"none", nil, nil},
		{"the busiest is full height", []audit.Minute{at(0, 30, 10), at(59, 10, 0)}, []want{
			{0, 0, 120, 120, 40}, {59 * chartBarStep, 120, 40, 160, 0}}},
		{"one record among many still shows", []audit.Minute{at(3, 0, 1), at(4, 1000, 0)}, []want{
			{3 * chartBarStep, 159, 0, 159, 1}, {4 * chartBarStep, 0, 160, 160, 0}}},
		{"outside the hour is left out", []audit.Minute{at(-1, 5, 5), at(60, 1, 1), at(10, 2, 2)}, []want{
			{10 * chartBarStep, 0, 80, 80, 80}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := chartOf(from, tc.minutes)
			if len(d.Bars) != len(tc.want) {
				t.Fatalf("%d bars, want %d: %+v", len(d.Bars), len(tc.want), d.Bars)
			}
			for i, w := range tc.want {
				b := d.Bars[i]
				if got := (want{b.X, b.AllowY, b.AllowH, b.DenyY, b.DenyH}); got != w {
					t.Errorf("bar %d: %+v, want %+v", i, got, w)
				}
			}
			if len(d.Ticks) != 7 || d.Ticks[6].Label != "11:00" || d.Ticks[6].X != d.Width {
				t.Errorf("ticks %+v", d.Ticks)
			}
		})
	}
}

// TestRankingLabels: a bar is labelled by the agent's name when known, else
// its key, and a record without a key (refused before it named an agent)
// still gets a visible label rather than an empty one.
func TestRankingLabels(t *testing.T) {
	for _, tc := range []struct {
		name      string
		c         audit.Count
		named     bool
		wantLabel string
		wantTitle string
	}{
		{"an agent by name", audit.Count{Key: "agent_1", Name: "researcher", Total: 3, Denied: 1}, true, "researcher", "agent_1: 3 decisions, 1 denied"},
		{"an agent no longer known", audit.Count{Key: "agent_1", Total: 2}, true, "agent_1", "agent_1: 2 decisions, 0 denied"},
		{"no agent", audit.Count{Key: "", Total: 3, Denied: 3}, true, "(no agent)", "(no agent): 3 decisions, 3 denied"},
		{"a reason", audit.Count{Key: "unauthorized", Total: 1, Denied: 1}, false, "unauthorized", "unauthorized: 1 decisions, 1 denied"},
		{"no reason", audit.Count{Key: "", Total: 1}, false, "(none)", "(none): 1 decisions, 0 denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bars, _ := ranking([]audit.Count{tc.c}, tc.named)
			if len(bars) != 1 || bars[0].Label != tc.wantLabel || bars[0].Title != tc.wantTitle {
				t.Fatalf("ranking(%+v, %v) = %+v, want label %q title %q", tc.c, tc.named, bars, tc.wantLabel, tc.wantTitle)
			}
		})
	}
}
