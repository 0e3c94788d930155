package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/config"
)

// TestProxyServices: with PROXY_SERVICES the gateway reaches the
// catalogue's services by name — the file's, and one put through the admin
// API, seen by the next request; without it, a catalogue loaded for xDS is
// not reachable through the HTTP port.
func TestProxyServices(t *testing.T) {
	hits := make(chan string, 4)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- r.Host + " " + r.URL.Path
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(upstream.Close)
	ep := strings.TrimPrefix(upstream.URL, "http://")
	file := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, "services:\n  - {name: docs, hosts: [docs.mesh.test], port: 8080, endpoints: [%q]}\n", ep), 0o644); err != nil {
		t.Fatal(err)
	}
	get := func(t *testing.T, r *running, tok, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+r.addrs.HTTP+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	agent := func(t *testing.T, r *running) string {
		t.Helper()
		a, err := r.admin.CreateAgent(context.Background(), api.CreateAgentRequest{Name: "reader", TrustTier: "verified", Tags: []string{"reader"}})
		if err != nil {
			t.Fatal(err)
		}
		return a.Token
	}

	t.Run("on", func(t *testing.T) {
		r := start(t, func(c *config.Config) { c.ServicesFile, c.ProxyServices = file, true })
		tok := agent(t, r)
		if s, b := get(t, r, tok, "/proxy/docs/a"); s != 200 || b != "ok" {
			t.Fatalf("docs: %d %s", s, b)
		}
		if got := <-hits; got != "docs.mesh.test:8080 /a" {
			t.Errorf("upstream received %q", got)
		}
		if s, b := get(t, r, tok, "/proxy/wiki/a"); s != 404 || !strings.Contains(b, `no service \"wiki\"`) {
			t.Fatalf("wiki before it is put: %d %s", s, b)
		}
		if _, err := r.admin.PutService(context.Background(), api.Service{Name: "wiki", Hosts: []string{"wiki.mesh.test"}, Port: 80, Endpoints: []string{ep}}); err != nil {
			t.Fatal(err)
		}
		if s, b := get(t, r, tok, "/proxy/wiki/b"); s != 200 {
			t.Fatalf("wiki once put: %d %s", s, b)
		}
		if got := <-hits; got != "wiki.mesh.test /b" {
			t.Errorf("upstream received %q", got)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		r := start(t, func(c *config.Config) { c.ServicesFile = file })
		if s, b := get(t, r, agent(t, r), "/proxy/docs/a"); s != 503 || !strings.Contains(b, "PROXY_SERVICES") {
			t.Fatalf("docs without PROXY_SERVICES: %d %s", s, b)
		}
	})
	if len(hits) != 0 {
		t.Errorf("the upstream received %q without PROXY_SERVICES", <-hits)
	}
}
