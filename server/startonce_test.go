package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/xds"
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

// countingXDS counts the resources the publisher hands the xDS server.
type countingXDS struct {
	next interface {
		Update(ctx context.Context, r *xds.Resources) error
	}
	updates atomic.Int64
	last    atomic.Pointer[xds.Resources]
}

func (c *countingXDS) Update(ctx context.Context, r *xds.Resources) error {
	c.updates.Add(1)
	c.last.Store(r)
	return c.next.Update(ctx, r)
}

// TestStartPublishesOnce: a start builds the xDS resources (and the wasm
// filter's configuration, an agent scan) once, from the catalogue read,
// whether SERVICES_FILE is good, broken or unset. Before, the publisher
// published the empty catalogue as it started, then the catalogue loaded
// published again. Ready says the start is over.
func TestStartPublishesOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		services string // "": no SERVICES_FILE
		orders   bool   // the catalogue's service is published
	}{
		{"a catalogue", servicesV1, true},
		{"a broken catalogue", "services: [\n", false},
		{"no SERVICES_FILE", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := configWith(t, func(c *config.Config) {
				c.WasmFilterPath = "/etc/envoy/meshguard-filter.wasm"
				if tc.services != "" {
					c.ServicesFile = filepath.Join(t.TempDir(), "services.yaml")
					if err := os.WriteFile(c.ServicesFile, []byte(tc.services), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			p, err := build(ctx, cfg, Options{}, slog.New(slog.DiscardHandler))
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			counted := &countingXDS{next: p.pub.in.XDS}
			p.pub.in.XDS = counted // before serve starts the publisher
			ready, done := make(chan Addrs, 1), make(chan error, 1)
			go func() {
				defer p.close()
				done <- p.serve(ctx, cfg, Options{Ready: ready, KeyReload: time.Hour, RevokedReload: time.Hour, ShutdownGrace: time.Second}, slog.New(slog.DiscardHandler))
			}()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			})
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("serve: %v", err)
			}
			if n := counted.updates.Load(); n != 1 {
				t.Errorf("the xDS resources were published %d times at start, want once", n)
			}
			r := counted.last.Load()
			if r == nil {
				t.Fatal("nothing was published")
			}
			var names []string
			for _, c := range r.Clusters {
				names = append(names, c.GetName())
			}
			if slices.Contains(names, "orders") != tc.orders || len(r.Extensions) != 1 {
				t.Errorf("published clusters %q and %d extensions, want orders: %v, and the wasm filter's configuration", names, len(r.Extensions), tc.orders)
			}
		})
	}
}
