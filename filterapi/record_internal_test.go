package filterapi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestCheckFilterRecordErrors: every record the engine could not have
// written is refused with an errBadRecord whose text is the field and the
// reason the filter's operators read in the 400; a text field's refusal
// also unwraps to the engine's own reason; a good record passes.
func TestCheckFilterRecordErrors(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	good := audit.Record{Timestamp: now, DecisionID: "dec_x", AgentID: "agt_x", Action: "read:docs",
		Method: "GET", Path: "/docs", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "rule_allow", Source: "wasm", Mode: "enforce"}
	if err := checkFilterRecord(&good, now); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(r *audit.Record)
		want  string
		cause error // the engine's reason it unwraps to, if any
	}{
		{"from last week", func(r *audit.Record) { r.Timestamp = now.Add(-7 * 24 * time.Hour) }, "timestamp: 2025-12-25T12:00:00Z is not within the last day", nil},
		{"from the future", func(r *audit.Record) { r.Timestamp = now.Add(time.Hour) }, "timestamp: 2026-01-01T13:00:00Z is not within the last day", nil},
		{"another source", func(r *audit.Record) { r.Source = "api" }, `source: "api": expected wasm`, nil},
		{"no decision", func(r *audit.Record) { r.Decision = "maybe" }, "decision: expected allow or deny", nil},
		{"no mode", func(r *audit.Record) { r.Mode = "" }, "mode: expected enforce or audit", nil},
		{"no status", func(r *audit.Record) { r.Status = 0 }, "status: 0: expected an HTTP status", nil},
		{"a long chain", func(r *audit.Record) { r.Chain = make([]string, 65) }, "chain or context: too long", nil},
		{"a negative latency", func(r *audit.Record) { r.LatencyUs = -1 }, "latencyUs and delegationDepth: must not be negative", nil},
		{"a long action", func(r *audit.Record) { r.Action = strings.Repeat("a", engine.MaxActionLen+1) }, "action: longer than 1024 bytes", edge.ErrTextTooLong},
		{"a host not UTF-8", func(r *audit.Record) { r.Host = "\xff.mesh" }, "host: not valid UTF-8", edge.ErrTextNotUTF8},
		{"a NUL in the path", func(r *audit.Record) { r.Path = "/a\x00" }, "path: contains a control character", nil},
		{"a chain entry with ESC", func(r *audit.Record) { r.Chain = []string{"agt_\x1b[2J"} }, "chain: contains a control character", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.edit(&r)
			err := checkFilterRecord(&r, now)
			if !errors.Is(err, errBadRecord) || err.Error() != tt.want {
				t.Fatalf("got %v; want an errBadRecord reading %q", err, tt.want)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Fatalf("%v does not unwrap to %v", err, tt.cause)
			}
		})
	}
}
