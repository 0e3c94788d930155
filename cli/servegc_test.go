package cli

import (
	"bytes"
	"errors"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/internal/gcbudget"
)

// TestServePacesTheCollector: serve paces the collector within
// GC_HEAP_BUDGET_MB unless the budget is 0 or GOGC is set (in the
// environment serve is given or in the process), and stops pacing when it
// returns.
func TestServePacesTheCollector(t *testing.T) {
	for _, tc := range []struct {
		name    string
		budget  int
		gogc    string
		paced   bool
		logLine string
		set     bool // the process's GOGC set to 200 first, as an embedding program might
	}{
		{"the default budget", 64, "", true, "", false},
		{"budget 0: Go's default", 0, "", false, "", false},
		{"the operator's GOGC wins", 64, "200", false, "GC_HEAP_BUDGET_MB not used: GOGC is set", false},
		{"the operator's GOGC=off wins", 64, "off", false, "GC_HEAP_BUDGET_MB not used: GOGC is set", false},
		{"an unreadable GOGC is the operator's too (Go reads it as 100)", 64, "abc", false, "GC_HEAP_BUDGET_MB not used: GOGC is set", false},
		{"the largest budget", 1 << 20, "", true, "", false},
		{"a percentage already set in the process wins", 64, "", false, "GC_HEAP_BUDGET_MB not used: the collector's percentage is already set", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if gcPercent() != 100 {
				t.Skip("GOGC is set in this process: serve leaves it alone")
			}
			if tc.set {
				debug.SetGCPercent(200)
				t.Cleanup(func() { debug.SetGCPercent(100) })
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			getenv := func(k string) string {
				if k == "GOGC" {
					return tc.gogc
				}
				return ""
			}
			stop := paceGC(tc.budget, getenv, log)
			other, err := gcbudget.Start(1 << 20)
			if err == nil {
				other.Stop()
			}
			if paced := errors.Is(err, gcbudget.ErrRunning); paced != tc.paced {
				t.Errorf("paced = %v, want %v (a second pacer: %v)", paced, tc.paced, err)
			}
			stop()
			p, err := gcbudget.Start(1 << 20)
			if err != nil {
				t.Fatalf("after serve's stop: %v", err)
			}
			p.Stop()
			if !strings.Contains(logs.String(), tc.logLine) {
				t.Errorf("logs %q, want %q", logs.String(), tc.logLine)
			}
		})
	}
}
