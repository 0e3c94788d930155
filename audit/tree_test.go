package audit_test

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// render writes a forest as "id[name](decisions){children}" so a table
// can hold the whole shape in one string.
func render(ns []*audit.TraceNode) string {
	var b strings.Builder
	for _, n := range ns {
		b.WriteString(n.ID)
		if n.Name != "" {
			b.WriteString("[" + n.Name + "]")
		}
		b.WriteString("(")
		for i, r := range n.Decisions {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(r.ID)
		}
		b.WriteString(")")
		if len(n.Children) > 0 {
			b.WriteString("{" + render(n.Children) + "}")
		}
	}
	return b.String()
}

func TestTraceTree(t *testing.T) {
	for _, tc := range []struct {
		name    string
		records []audit.Record
		want    string
	}{
		{name: "empty", want: ""},
		{name: "one agent, two decisions in written order",
			records: []audit.Record{{ID: "1", AgentID: "a", AgentName: "alpha", Chain: []string{"a"}}, {ID: "2", AgentID: "a", Chain: []string{"a"}}},
			want:    "a[alpha](1,2)"},
		{name: "a delegation sits under its delegator",
			records: []audit.Record{
				{ID: "1", AgentID: "a", AgentName: "alpha", Chain: []string{"a"}},
				{ID: "2", AgentID: "b", AgentName: "beta", Chain: []string{"a", "b"}},
				{ID: "3", AgentID: "c", Chain: []string{"a", "b", "c"}},
			},
			want: "a[alpha](1){b[beta](2){c(3)}}"},
		{name: "an intermediate agent with no decision of its own still shows",
			records: []audit.Record{{ID: "1", AgentID: "c", Chain: []string{"a", "c"}}},
			want:    "a(){c(1)}"},
		{name: "unauthenticated records group at the top",
			records: []audit.Record{{ID: "1"}, {ID: "2", AgentID: "a", Chain: []string{"a"}}, {ID: "3"}},
			want:    "(1,3)a(2)"},
		{name: "a record without a chain sits under its agent",
			records: []audit.Record{{ID: "1", AgentID: "a", AgentName: "alpha"}},
			want:    "a[alpha](1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(audit.TraceTree(tc.records)); got != tc.want {
				t.Errorf("TraceTree = %q, want %q", got, tc.want)
			}
		})
	}
}
