package server

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/config"
)

// TestStartReadsFilesOnce: a start compiles the policy set once and reads
// PROXIES_FILE once, whether the files are good or not; the watchers are
// registered before those reads, so the one read is also the safe one
// (TestFilesChangedBeforeWatchingAreReloaded and the watcher-at-Ready
// tests pin that no change is missed). Before, both were read again after
// their watchers were registered: 10,000 rules compiled twice at start.
// What the server logs of each compile (success or failure) counts them;
// Ready is the event that says the start is over.
func TestStartReadsFilesOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy string // an extra policy file
		loaded bool   // the set compiles
	}{
		{"good policies", "", true},
		{"a broken policy", "name: broken\nrules: [\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := newLogEvents()
			cfg := configWith(t, func(c *config.Config) {
				if tc.policy != "" {
					writePolicy(t, c, "broken.yaml", tc.policy)
				}
			})
			runWith(t, cfg, Options{Logger: slog.New(logs)})
			var compiled, failed, proxiesRead int
			logs.store.mu.Lock()
			for _, l := range logs.store.lines {
				switch {
				case strings.HasPrefix(l.msg, "policies loaded"), strings.HasPrefix(l.msg, "policies reloaded"):
					compiled++
				case strings.HasPrefix(l.msg, "policies did not load"), strings.HasPrefix(l.msg, "policy reload failed"):
					failed++
				case strings.HasPrefix(l.msg, "PROXIES_FILE reload"):
					proxiesRead++
				}
			}
			logs.store.mu.Unlock()
			if compiled+failed != 1 {
				t.Errorf("the policy set was compiled %d times at start (%d loaded, %d failed), want once", compiled+failed, compiled, failed)
			}
			if tc.loaded != (compiled == 1) {
				t.Errorf("policies loaded %d times, want the set to load: %v", compiled, tc.loaded)
			}
			if proxiesRead != 0 {
				t.Errorf("PROXIES_FILE was read again %d times after build read it", proxiesRead)
			}
		})
	}
}
