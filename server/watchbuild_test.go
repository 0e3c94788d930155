package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshguard/meshguard/config"
)

// TestFilesChangedBeforeWatchingAreReloaded: PROXIES_FILE and POLICIES_DIR
// are read while the server is built, their watchers' loops started only
// when it starts serving; on PostgreSQL the store's round trips (keys,
// revoked tokens, stored policies) lie in between. A proxy removed, or a
// policy added, in that window is in force once the server is ready: the
// watchers are registered before build reads the files, so the kernel
// queues the change for the loops. Before the watchers were registered
// that early, the change was never seen until the next one: the removed
// proxy kept reading xDS.
func TestFilesChangedBeforeWatchingAreReloaded(t *testing.T) {
	const removed = "mgp_removed-before-watching-0123456789"
	dir := t.TempDir()
	cfg := configWith(t, func(c *config.Config) {
		c.ProxyAuth.ProxiesFile = writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken}, testProxy{name: "removed", token: removed})
	})
	ctx, cancel := context.WithCancel(context.Background())
	p, err := build(ctx, cfg, Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if got := p.loader.Current().Len(); got != 1 {
		t.Fatalf("built with %d policies, want 1", got)
	}
	// The window: both files change after they were read, before serve.
	writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken})
	writePolicy(t, cfg, "writers.yaml", `name: writers
appliesTo: {tags: [writer]}
rules:
  - {name: writes, effect: allow, actions: ["write:*"]}
`)
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
	var addrs Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	conn, err := grpc.NewClient(addrs.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	wait, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	// Each probe is bounded by wait's deadline, so no one probe eats it.
	for firstClusters(asProxy(wait, removed), t, conn) != codes.Unauthenticated {
		if wait.Err() != nil {
			t.Fatal("the proxy removed before the watcher was registered is still served")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for p.loader.Current().Len() != 2 {
		if wait.Err() != nil {
			t.Fatal("the policy added before the watcher was registered is not loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSymlinkedProxiesFileTargetChangeIsReloaded: PROXIES_FILE may be a
// symlink to a file in another directory (a secrets mount). A proxy
// removed from the target is refused: the target's directory is watched
// too, not only the link's.
func TestSymlinkedProxiesFileTargetChangeIsReloaded(t *testing.T) {
	const removed = "mgp_removed-from-symlink-target-0123456789"
	linkDir, targetDir := t.TempDir(), t.TempDir()
	target := writeProxies(t, targetDir, testProxy{name: testProxyName, token: testProxyToken}, testProxy{name: "removed", token: removed})
	link := filepath.Join(linkDir, "proxies.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	r := start(t, func(c *config.Config) { c.ProxyAuth.ProxiesFile = link })
	if code := firstClusters(asProxy(context.Background(), removed), t, r.grpc); code != codes.OK {
		t.Fatalf("the listed proxy: %v, want OK", code)
	}
	writeProxies(t, targetDir, testProxy{name: testProxyName, token: testProxyToken})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for firstClusters(asProxy(ctx, removed), t, r.grpc) != codes.Unauthenticated {
		if ctx.Err() != nil {
			t.Fatal("the proxy removed from the symlink's target is still served")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
