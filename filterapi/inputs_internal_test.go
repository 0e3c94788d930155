package filterapi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// TestCheckFilterInputs: a shipped record's inputs are held to what the
// engine writes; what it could not have written is refused, naming the
// field, and the inputs the engine does write pass.
func TestCheckFilterInputs(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	good := audit.Record{Timestamp: now, DecisionID: "dec_x", AgentID: "agt_x", Action: "read:docs", Chain: []string{"agt_p", "agt_x"},
		Method: "GET", Path: "/docs", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "rule_allow", Source: "wasm", Mode: "enforce",
		Inputs: &audit.Inputs{Tags: []string{"reader"}, Chain: []audit.ChainMember{{Name: "planner", Tier: "trusted", Tags: []string{"planner"}}},
			Scope: []string{"read:*"}, Absent: []string{"header.x-env", "query.q", "arguments.to"}}}
	if err := checkFilterRecord(&good, now); err != nil {
		t.Fatalf("inputs the engine writes: %v", err)
	}
	tests := []struct {
		name string
		edit func(in *audit.Inputs)
		want string
	}{
		{"too many tags", func(in *audit.Inputs) { in.Tags = make([]string, 65) }, "inputs.tags: more than 64"},
		{"a NUL in a tag", func(in *audit.Inputs) { in.Tags = []string{"a\x00"} }, "inputs.tags: contains a control character"},
		{"a chain member too many", func(in *audit.Inputs) { in.Chain = append(in.Chain, in.Chain[0]) }, "inputs.chain: not one member per delegator of the record's chain"},
		{"a long member name", func(in *audit.Inputs) { in.Chain[0].Name = strings.Repeat("n", 129) }, "inputs.chain: longer than 128 bytes"},
		{"a member tag with ESC", func(in *audit.Inputs) { in.Chain[0].Tags = []string{"\x1b[2J"} }, "inputs.chain.tags: contains a control character"},
		{"a wide scope", func(in *audit.Inputs) { in.Scope = make([]string, 65) }, "inputs.scope: more than 64 entries"},
		{"an absent key that reads nothing of the request", func(in *audit.Inputs) { in.Absent = []string{"classification"} },
			`inputs.absent: "classification": not a request key (header.*, query.*, arguments.*)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			in := *good.Inputs
			in.Chain = append([]audit.ChainMember(nil), good.Inputs.Chain...)
			r.Inputs = &in
			tt.edit(&in)
			if err := checkFilterRecord(&r, now); !errors.Is(err, errBadRecord) || err.Error() != tt.want {
				t.Fatalf("got %v; want an errBadRecord reading %q", err, tt.want)
			}
		})
	}
}
