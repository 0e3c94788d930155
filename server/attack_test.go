package server

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/filterprotocol"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshguard/meshguard/config"
)

// TestRemovedProxysOpenStreamEnds: removing a proxy from PROXIES_FILE ends
// the xDS streams it has open (state of the world and delta) with
// Unauthenticated, so it is sent no later configuration, while another
// proxy's streams go on. Before, a stream opened while listed kept
// receiving every push after the proxy's removal.
//
// The test waits for the event itself, each removed stream's end, bounded
// only by ctx's generous deadline. (It polled new probe streams, each
// allowed 10 s, within a 10 s deadline: one slow probe ate it all.)
func TestRemovedProxysOpenStreamEnds(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(file, []byte(servicesV1), 0o644); err != nil {
		t.Fatal(err)
	}
	const removed = "mgp_removed-proxy-credential-0123456789"
	r := start(t, func(c *config.Config) {
		c.ServicesFile = file
		c.ProxyAuth.ProxiesFile = writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken}, testProxy{name: "removed", token: removed})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(r.grpc)

	sotw := func(token string) func() error {
		t.Helper()
		s, err := ads.StreamAggregatedResources(asProxy(ctx, token))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "n-" + token[4:10]}, TypeUrl: resourcev3.ClusterType}); err != nil {
			t.Fatal(err)
		}
		return func() error {
			resp, err := s.Recv()
			if err == nil {
				err = s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
			}
			return err
		}
	}
	delta := func(token string) func() error {
		t.Helper()
		s, err := ads.DeltaAggregatedResources(asProxy(ctx, token))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "d-" + token[4:10]}, TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
			t.Fatal(err)
		}
		return func() error {
			resp, err := s.Recv()
			if err == nil {
				err = s.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: resp.GetNonce()})
			}
			return err
		}
	}
	streams := map[string]func() error{
		"removed, state of the world": sotw(removed),
		"removed, delta":              delta(removed),
		"kept, state of the world":    sotw(testProxyToken),
		"kept, delta":                 delta(testProxyToken),
	}
	for name, next := range streams {
		if err := next(); err != nil {
			t.Fatalf("%s: first answer: %v", name, err)
		}
	}

	writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken})
	check := func(stream string, want codes.Code) {
		t.Helper()
		t.Run(stream, func(t *testing.T) {
			if got := status.Code(streams[stream]()); got != want {
				t.Fatalf("after the removal: %v, want %v", got, want)
			}
		})
	}
	// The reload ends the removed proxy's streams, with no push to wait
	// for: their next receive is that end (or ctx's deadline, if never).
	check("removed, state of the world", codes.Unauthenticated)
	check("removed, delta", codes.Unauthenticated)
	// The reload stored the new list before it ended them: a new stream of
	// the removed proxy is refused too.
	if got := firstClusters(asProxy(ctx, removed), t, r.grpc); got != codes.Unauthenticated {
		t.Fatalf("a new stream of the removed proxy: %v, want %v", got, codes.Unauthenticated)
	}
	// A change every open stream would be sent: the kept proxy's streams
	// go on and get it.
	if err := os.WriteFile(file, []byte(servicesV2), 0o644); err != nil {
		t.Fatal(err)
	}
	check("kept, state of the world", codes.OK)
	check("kept, delta", codes.OK)
}

// TestFilterCheckRecordsNameTheProxy: a decision a wasm filter defers to
// MeshGuard (POST /v1/filter/check) is recorded with the proxy whose
// credential asked, as the records a filter ships are: the trail says
// which proxy's credential obtained each decision, and so each delegation
// token minted through it. Before, these records named no proxy.
func TestFilterCheckRecordsNameTheProxy(t *testing.T) {
	r := start(t, func(c *config.Config) { c.WasmFilterPath = "/etc/envoy/meshguard-filter.wasm" })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	token := r.agent(t, "reader-1", "reader")
	for _, tc := range []struct {
		name, token string
		want        bool
	}{
		{"allowed", token, true},
		{"denied", "not-a-token", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(filterprotocol.DeferredCheck{Method: "GET", Host: "docs.internal", Path: "/docs/" + tc.name, Token: tc.token})
			req, _ := http.NewRequest("POST", "http://"+r.addrs.HTTP+filterprotocol.CheckPath, bytes.NewReader(body))
			req.Header.Set(filterprotocol.HeaderFilterToken, testProxyToken)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var v filterprotocol.Verdict
			err = json.NewDecoder(res.Body).Decode(&v)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 || v.Allowed != tc.want {
				t.Fatalf("POST %s: %d %+v %v", filterprotocol.CheckPath, res.StatusCode, v, err)
			}
			eventually(t, "the deferred decision's record", func() bool {
				page, err := r.admin.QueryAudit(ctx, client.AuditFilter{})
				if err != nil {
					t.Fatal(err)
				}
				for _, got := range page.Records {
					if got.DecisionID == v.DecisionID {
						if got.Proxy != testProxyName || got.Source != "wasm" {
							t.Fatalf("the record names proxy %q, source %q; want %q, wasm", got.Proxy, got.Source, testProxyName)
						}
						return true
					}
				}
				return false
			})
		})
	}
	if v, err := r.admin.VerifyAudit(ctx); err != nil || !v.OK {
		t.Fatalf("the chain: %+v, %v", v, err)
	}
}

// TestPublicEndpointsRevealNoSecret: what anyone who reaches the HTTP port
// without a credential gets — health, readiness, metrics, the JWKS and
// discovery document, and /v1/filter/config with every credential that is
// not a filter's (none, the admin token, a proxy's digest, the
// placeholder, the proxy's credential in other case or behind a prefix) —
// holds no admin token, proxy credential, filter credential or private
// key member, and the filter endpoints answer 401.
func TestPublicEndpointsRevealNoSecret(t *testing.T) {
	r := start(t, func(c *config.Config) { c.WasmFilterPath = "/etc/envoy/meshguard-filter.wasm" })
	admin := r.adminToken(t)
	secrets := []string{admin, testProxyToken, "mgf2_", `"d":`}
	get := func(path, cred string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+r.addrs.HTTP+path, nil)
		if cred != "" {
			req.Header.Set(filterprotocol.HeaderFilterToken, cred)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		return res.StatusCode, b.String()
	}
	for _, tc := range []struct {
		name, path, cred string
		want             int
	}{
		{"health", "/health", "", 200},
		{"ready", "/ready", "", 200},
		{"metrics", "/metrics", "", 200},
		{"jwks", "/.well-known/jwks.json", "", 200},
		{"discovery", "/.well-known/openid-configuration", "", 200},
		{"filter config, no credential", filterprotocol.ConfigPath, "", 401},
		{"filter config, the admin token", filterprotocol.ConfigPath, admin, 401},
		{"filter config, the proxy's digest", filterprotocol.ConfigPath, digestOf(testProxyToken), 401},
		{"filter config, the digest's hex", filterprotocol.ConfigPath, strings.TrimPrefix(digestOf(testProxyToken), "sha256:"), 401},
		{"filter config, the placeholder", filterprotocol.ConfigPath, "mgf2-unbound-0", 401},
		{"filter config, the credential upper-cased", filterprotocol.ConfigPath, strings.ToUpper(testProxyToken), 401},
		{"filter config, a Bearer prefix", filterprotocol.ConfigPath, "Bearer x" + testProxyToken, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(tc.path, tc.cred)
			if code != tc.want {
				t.Fatalf("%s: %d, want %d: %s", tc.path, code, tc.want, body)
			}
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Fatalf("%s reveals %q: %s", tc.path, s, body)
				}
			}
		})
	}
}
