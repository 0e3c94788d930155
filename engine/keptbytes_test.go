package engine_test

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
)

// TestKeptBytesCountsTheRequestsStrings: what an entry keeps grows with
// the path and the request values policies read, the strings an agent
// chooses.
func TestKeptBytesCountsTheRequestsStrings(t *testing.T) {
	base := engine.Decision{Action: "read:docs/a", Resource: "/docs/a"}
	for _, tc := range []struct {
		name string
		d    engine.Decision
		more int // at least this many bytes more than base
	}{
		{"a longer action and resource", engine.Decision{Action: "read:" + strings.Repeat("a", 1000), Resource: "/" + strings.Repeat("a", 1000)}, 1980},
		{"a value a policy read", engine.Decision{Action: "read:docs/a", Resource: "/docs/a", Context: map[string]any{"header.x": strings.Repeat("v", 500)}}, 500},
		{"a list value", engine.Decision{Action: "read:docs/a", Resource: "/docs/a", Context: map[string]any{"arguments.x": []any{strings.Repeat("v", 300), map[string]any{"k": strings.Repeat("w", 300)}}}}, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, b := tc.d.KeptBytes(), base.KeptBytes(); got < b+tc.more {
				t.Fatalf("KeptBytes %d, base %d: want at least %d more", got, b, tc.more)
			}
		})
	}
}
