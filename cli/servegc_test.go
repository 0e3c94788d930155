package cli

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/internal/gcbudget"
)

// TestServePacesTheCollector: serve paces the collector within
// GC_HEAP_BUDGET_MB unless the budget is 0 or the operator set GOGC, and
// stops pacing when it returns.
func TestServePacesTheCollector(t *testing.T) {
	for _, tc := range []struct {
		name    string
		budget  int
		gogc    string
		paced   bool
		logLine string
	}{
		{"the default budget", 64, "", true, ""},
		{"budget 0: Go's default", 0, "", false, ""},
		{"the operator's GOGC wins", 64, "200", false, "GC_HEAP_BUDGET_MB not used: GOGC is set"},
		{"the operator's GOGC=off wins", 64, "off", false, "GC_HEAP_BUDGET_MB not used: GOGC is set"},
		{"an unreadable GOGC is the operator's too (Go reads it as 100)", 64, "abc", false, "GC_HEAP_BUDGET_MB not used: GOGC is set"},
		{"the largest budget", 1 << 20, "", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
