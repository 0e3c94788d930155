package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestWasmFilterInTheIngressListener: with Wasm set, the ingress listener
// runs the wasm filter (configured over ECDS, no default, so nothing passes
// before its configuration arrives) and the router; the filter's
// configuration resource carries the configuration verbatim and fails
// closed; MeshGuard's HTTP port is a cluster.
func TestWasmFilterInTheIngressListener(t *testing.T) {
	o := testOptions
	o.Wasm = &Wasm{Path: "/etc/envoy/meshguard-filter.wasm", HTTPHost: "meshguard.meshguard-system.svc", HTTPPort: 3100, Config: []byte(`{"version":1}`)}
	r, err := Build(exampleCatalogue(t), o)
	if err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := r.Listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	fs := hcm.GetHttpFilters()
	if len(fs) != 2 || fs[0].GetName() != WasmFilter || fs[1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("ingress filters: %v", fs)
	}
	cd := fs[0].GetConfigDiscovery()
	if cd == nil || cd.GetDefaultConfig() != nil || cd.GetConfigSource().GetAds() == nil || len(cd.GetTypeUrls()) != 1 {
		t.Fatalf("the wasm filter's config discovery: %v", cd)
	}
	if len(r.Extensions) != 1 || r.Extensions[0].GetName() != WasmFilter {
		t.Fatalf("extensions: %v", r.Extensions)
	}
	var w wasmfilterv3.Wasm
	if err := r.Extensions[0].GetTypedConfig().UnmarshalTo(&w); err != nil {
		t.Fatal(err)
	}
	var cfg wrapperspb.StringValue
	if err := w.GetConfig().GetConfiguration().UnmarshalTo(&cfg); err != nil || cfg.GetValue() != `{"version":1}` {
		t.Fatalf("configuration %q, %v", cfg.GetValue(), err)
	}
	if w.GetConfig().GetFailurePolicy() != wasmv3.FailurePolicy_FAIL_CLOSED {
		t.Fatal("the wasm filter does not fail closed")
	}
	if got := w.GetConfig().GetVmConfig().GetCode().GetLocal().GetFilename(); got != o.Wasm.Path {
		t.Fatalf("code %q", got)
	}
	// MeshGuard's HTTP port by name: a STRICT_DNS cluster (EDS takes IPs
	// only); by IP: EDS.
	var http *clusterv3.Cluster
	for _, c := range r.Clusters {
		if c.GetName() == HTTPCluster {
			http = c
		}
	}
	if http.GetType() != clusterv3.Cluster_STRICT_DNS || !strings.Contains(http.GetLoadAssignment().String(), "3100") {
		t.Fatalf("MeshGuard's HTTP cluster %v", http)
	}
	byIP := o
	byIP.Wasm = &Wasm{Path: o.Wasm.Path, HTTPHost: "10.0.0.2", HTTPPort: 3100, Config: o.Wasm.Config}
	r2, err := Build(exampleCatalogue(t), byIP)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range r2.Endpoints {
		found = found || e.GetClusterName() == HTTPCluster && strings.Contains(e.String(), "10.0.0.2")
	}
	if !found {
		t.Fatal("no EDS endpoint for MeshGuard's HTTP port by IP")
	}

	for _, vh := range r.Routes[0].GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			if len(rt.GetTypedPerFilterConfig()) != 0 {
				t.Fatalf("route %s carries ext_authz context with no ext_authz in the listener", rt.GetName())
			}
		}
	}

	o.Wasm.Config = nil
	if _, err := Build(exampleCatalogue(t), o); err == nil {
		t.Fatal("a wasm filter without a configuration was built")
	}
}
