package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/xds"
)

// TestWildcardFilterConfigIsBoundToItsProxy: a proxy may ask for the wasm
// filter's configuration without naming it (a wildcard request, which
// Envoy never sends but any client may), on the same ADS stream as the
// types the server sends every stream from one shared encoding (xds
// wire.go). The configuration must still reach each proxy bound to it —
// its own filter credential, which opens /v1/filter/* — never the shared,
// unbound bytes; and the shared types arrive whole beside it.
func TestWildcardFilterConfigIsBoundToItsProxy(t *testing.T) {
	dir := t.TempDir()
	const tokenB = "mgp_proxy-b-credential-0123456789abcdef"
	r := start(t, func(c *config.Config) {
		c.WasmFilterPath = "/etc/envoy/meshguard-filter.wasm"
		c.ProxyAuth.ProxiesFile = writeProxies(t, dir, testProxy{name: "proxy-a", token: testProxyToken}, testProxy{name: "proxy-b", token: tokenB})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	credential := func(node, token string) string {
		t.Helper()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(r.grpc).StreamAggregatedResources(asProxy(ctx, token))
		if err != nil {
			t.Fatal(err)
		}
		types := []string{resourcev3.ClusterType, resourcev3.ExtensionConfigType, resourcev3.ListenerType}
		for _, typeURL := range types {
			if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node}, TypeUrl: typeURL}); err != nil {
				t.Fatal(err)
			}
		}
		var cred string
		for seen := map[string]bool{}; len(seen) < len(types); {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			seen[resp.GetTypeUrl()] = true
			if len(resp.GetResources()) == 0 {
				t.Fatalf("%s: a %s response without resources", node, resp.GetTypeUrl())
			}
			for _, res := range resp.GetResources() {
				if res.GetTypeUrl() != resp.GetTypeUrl() {
					t.Fatalf("%s: a %s response holds a %s", node, resp.GetTypeUrl(), res.GetTypeUrl())
				}
			}
			if resp.GetTypeUrl() != resourcev3.ExtensionConfigType {
				continue
			}
			var ext corev3.TypedExtensionConfig
			var w wasmfilterv3.Wasm
			var doc wrapperspb.StringValue
			if err := resp.GetResources()[0].UnmarshalTo(&ext); err != nil || ext.GetName() != xds.WasmFilter {
				t.Fatalf("%s: extension config %q: %v", node, ext.GetName(), err)
			}
			if err := ext.GetTypedConfig().UnmarshalTo(&w); err != nil {
				t.Fatal(err)
			}
			if err := w.GetConfig().GetConfiguration().UnmarshalTo(&doc); err != nil {
				t.Fatal(err)
			}
			c, err := filterconfig.Parse([]byte(doc.GetValue()))
			if err != nil {
				t.Fatal(err)
			}
			cred = c.MeshGuard.Token
		}
		return cred
	}
	credA, credB := credential("node-a", testProxyToken), credential("node-b", tokenB)
	if credA == credB || !strings.HasPrefix(credA, "mgf2_") || !strings.HasPrefix(credB, "mgf2_") {
		t.Fatalf("the wildcard streams' filter credentials: %q and %q, want one of its own each", credA, credB)
	}
	for _, cred := range []string{credA, credB} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addrs.HTTP+filterprotocol.ConfigPath, nil)
		req.Header.Set(filterprotocol.HeaderFilterToken, cred)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s with a wildcard stream's credential: %d", filterprotocol.ConfigPath, res.StatusCode)
		}
	}
}
