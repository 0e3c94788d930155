package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/meshguard/meshguard/proxyauth"
)

// The proxy every test server lists (configWith), whose bearer credential
// the tests' xDS streams carry.
const (
	testProxyName  = "envoy-test"
	testProxyToken = "mgp_test-proxy-credential-0123456789abcdef"
)

type testProxy struct {
	name, token string
	identities  []string
}

// writeProxies writes a PROXIES_FILE listing proxies into dir.
func writeProxies(t testing.TB, dir string, proxies ...testProxy) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("proxies:\n")
	for _, p := range proxies {
		b.WriteString("  - name: " + p.name + "\n")
		if p.token != "" {
			b.WriteString("    tokens: [\"" + proxyauth.Digest(p.token) + "\"]\n")
		}
		if len(p.identities) > 0 {
			b.WriteString("    identities: [\"" + strings.Join(p.identities, "\", \"") + "\"]\n")
		}
	}
	file := filepath.Join(dir, "proxies.yaml")
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	return file
}

// asProxy is ctx carrying a proxy's bearer credential, as Envoy's
// initial_metadata sends it on its ADS stream.
func asProxy(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func digestOf(token string) string { return proxyauth.Digest(token) }

// adminToken is the admin token r serves with.
func (r *running) adminToken(t *testing.T) string {
	t.Helper()
	if r.cfg.AdminToken != "" {
		return r.cfg.AdminToken
	}
	b, err := os.ReadFile(filepath.Join(r.cfg.DataDir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
