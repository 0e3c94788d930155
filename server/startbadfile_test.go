package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/config"
)

// TestBrokenProxiesFileFailsStart: PROXIES_FILE is now watched before it
// is read, so a start must still fail on a file that does not parse, is
// missing or names a proxy twice — never serve with the proxies it could
// not read — and its error names the file. The watcher registered first is
// closed with the failed start (build's cleanup), so a second start with
// the file fixed starts.
func TestBrokenProxiesFileFailsStart(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"not YAML", "proxies: [\n"},
		{"a proxy twice", "proxies:\n  - name: a\n  - name: a\n"},
		{"missing", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "proxies.yaml")
			if tc.content != "" {
				if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := configWith(t, func(c *config.Config) { c.ProxyAuth.ProxiesFile = file })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			watchers := inotifyDescriptors(t)
			p, err := build(ctx, cfg, Options{}, slog.New(slog.DiscardHandler))
			if err == nil {
				p.close()
				t.Fatalf("build with a broken PROXIES_FILE (%s) succeeded", tc.name)
			}
			if n := inotifyDescriptors(t); n != watchers {
				t.Errorf("%d inotify descriptors open after the failed start, %d before: a watcher was left open", n, watchers)
			}
			if !strings.Contains(err.Error(), file) && !strings.Contains(err.Error(), "PROXIES_FILE") {
				t.Errorf("error %q names neither PROXIES_FILE nor %s", err, file)
			}
			writeProxies(t, filepath.Dir(file), testProxy{name: testProxyName, token: testProxyToken})
			p, err = build(ctx, cfg, Options{}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("build with the file fixed: %v", err)
			}
			p.close()
		})
	}
}

// inotifyDescriptors counts the process's open inotify instances (one a
// file watcher).
func inotifyDescriptors(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}
