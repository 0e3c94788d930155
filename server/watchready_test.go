package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/meshguard/meshguard/config"
)

// TestProxiesChangedAtReadyAreReloaded: PROXIES_FILE changed the moment
// the server says it is ready is reloaded. Before, the file watchers were
// registered by goroutines that could start after Ready, and a change
// made in between was never seen (until the next one).
func TestProxiesChangedAtReadyAreReloaded(t *testing.T) {
	dir := t.TempDir()
	services := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(services, []byte(servicesV1), 0o644); err != nil {
		t.Fatal(err)
	}
	const removed = "mgp_removed-proxy-credential-0123456789"
	r := start(t, func(c *config.Config) {
		c.ServicesFile = services
		c.ProxyAuth.ProxiesFile = writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken}, testProxy{name: "removed", token: removed})
	})
	writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Each probe is bounded by ctx's deadline, so no one probe eats it.
	for firstClusters(asProxy(ctx, removed), t, r.grpc) != codes.Unauthenticated {
		if ctx.Err() != nil {
			t.Fatal("the removed proxy is still served: the change made at Ready was never reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
