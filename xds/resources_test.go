package xds

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/envoy/envoytest"
	"github.com/meshguard/meshguard/extauthz"
)

// go test ./xds -update rewrites the golden files from what Build makes.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var testOptions = Options{ListenerPort: 10000, AuthzHost: "meshguard.meshguard-system.svc", AuthzPort: 3101}

func exampleCatalogue(t *testing.T) *catalog.Catalogue {
	t.Helper()
	data, err := os.ReadFile("../examples/services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's services, and one for each agent protocol: an MCP
	// server without routes and an A2A agent with one.
	data = append(data, []byte(`
  - name: mail
    hosts: [mail.mesh]
    port: 8080
    endpoints: ["10.0.0.20:8080"]
    protocol: mcp
  - name: planner
    hosts: [planner.mesh]
    port: 8080
    endpoints: ["10.0.0.21:8080"]
    minTier: verified
    protocol: a2a
    routes:
      - {method: GET, path: /.well-known/agent-card.json, action: "connect:planner"}
`)...)
	c, err := catalog.Parse("services.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stableJSON renders a message as indented JSON with sorted keys:
// protojson's own spacing is deliberately unstable.
func stableJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	raw, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// TestGolden: the resources generated for the example catalogue, one
// golden file per resource.
func TestGolden(t *testing.T) {
	r, err := Build(exampleCatalogue(t), testOptions)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]proto.Message{}
	for _, l := range r.Listeners {
		files["listener_"+l.GetName()] = l
	}
	for _, rc := range r.Routes {
		files["route_"+rc.GetName()] = rc
	}
	for _, c := range r.Clusters {
		files["cluster_"+c.GetName()] = c
	}
	for _, e := range r.Endpoints {
		files["endpoints_"+e.GetClusterName()] = e
	}
	dir := filepath.Join("testdata", "golden")
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, m := range files {
		path := filepath.Join(dir, name+".json")
		got := stableJSON(t, m)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./xds -update to write the golden files)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from its golden file; if the change is intended, run go test ./xds -update\n got:\n%s", path, got)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(files) {
		t.Errorf("%d golden files, %d resources: stale files in %s", len(entries), len(files), dir)
	}
}

// TestRoutesCarryTheirAction: each catalogue route passes its action to
// ext_authz; longer paths come first; the rest fall through to "/"; every
// route, the fallback too, carries the service's minimum tier.
func TestRoutesCarryTheirAction(t *testing.T) {
	r, err := Build(exampleCatalogue(t), testOptions)
	if err != nil {
		t.Fatal(err)
	}
	var ingress *routev3.RouteConfiguration
	for _, rc := range r.Routes {
		if rc.GetName() == IngressRoutes {
			ingress = rc
		}
	}
	vh := ingress.GetVirtualHosts()[0]
	if vh.GetName() != "researcher" || len(vh.GetRoutes()) != 3 {
		t.Fatalf("virtual host %v", vh)
	}
	first := vh.GetRoutes()[0]
	if first.GetMatch().GetPath() != "/tasks/research" {
		t.Fatalf("the longest path is not first: %v", first.GetMatch())
	}
	var per extauthzv3.ExtAuthzPerRoute
	if err := first.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"].UnmarshalTo(&per); err != nil {
		t.Fatal(err)
	}
	if got := per.GetCheckSettings().GetContextExtensions()[extauthz.ContextExtensionAction]; got != "write:tasks/research" {
		t.Fatalf("action %q", got)
	}
	last := vh.GetRoutes()[2]
	if last.GetMatch().GetPrefix() != "/" {
		t.Fatalf("fallback route %v", last)
	}
	if err := last.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"].UnmarshalTo(&per); err != nil {
		t.Fatal(err)
	}
	if ext := per.GetCheckSettings().GetContextExtensions(); len(ext) != 1 || ext[extauthz.ContextExtensionMinTier] != "verified" {
		t.Fatalf("fallback route's context %v: want only the minimum tier", ext)
	}
}

func TestBuildRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {ListenerPort: 10000, AuthzPort: 3101}, {ListenerPort: 70000, AuthzHost: "x", AuthzPort: 1}} {
		if _, err := Build(&catalog.Catalogue{}, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

// BenchmarkBuild1000: a catalogue of 1,000 services, each with two
// routes, generated and validated.
func BenchmarkBuild1000(b *testing.B) {
	services := make([]catalog.Service, 1000)
	for i := range services {
		name := "svc-" + itoa(i)
		services[i] = catalog.Service{Name: name, Hosts: []string{name + ".mesh"}, Port: 8080,
			Endpoints: []string{"10.0.0.1:8080", "10.0.0.2:8080"},
			Routes:    []catalog.Route{{Method: "GET", Path: "/items/*", Action: "read:items"}, {Method: "POST", Path: "/items", Action: "write:items"}}}
	}
	c, err := catalog.New(services)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(c, testOptions); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	return string(rune('a'+i/26/26%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i%26))
}

// TestIngressRefusesUnderscoreHeaders: the ingress listener refuses a
// header spelled with '_' (X_Env), which CGI-style upstreams read as the
// dashed name: it could stand beside the header a policy reads, or forge
// an x-meshguard-* identity header.
func TestIngressRefusesUnderscoreHeaders(t *testing.T) {
	for _, o := range []Options{testOptions, {ListenerPort: 10000, AuthzHost: "meshguard", AuthzPort: 3101, Wasm: &Wasm{}}} {
		l := ingressListener(o)
		var hcm hcmv3.HttpConnectionManager
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
			t.Fatal(err)
		}
		if got := hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); got != corev3.HttpProtocolOptions_REJECT_REQUEST {
			t.Errorf("wasm %v: headers_with_underscores_action %v, want REJECT_REQUEST", o.Wasm != nil, got)
		}
	}
}

// TestIngressFailsClosed: what Build serves, with ext_authz or the wasm
// filter, MeshGuard by name or by IP, over TLS or not, passes the one
// fail-closed check every Envoy configuration MeshGuard ships is held to.
func TestIngressFailsClosed(t *testing.T) {
	wasm := &Wasm{Path: "/etc/envoy/meshguard-filter.wasm", HTTPHost: "meshguard.meshguard-system.svc", HTTPPort: 3100, Config: []byte(`{"version":1}`)}
	byIP := testOptions
	byIP.AuthzHost = "10.0.0.2"
	for _, tc := range []struct {
		name string
		o    Options
		tls  bool
	}{
		{"ext_authz", testOptions, false},
		{"ext_authz by IP", byIP, false},
		{"ext_authz over TLS", testOptions, true},
		{"wasm filter", Options{ListenerPort: 10000, AuthzHost: "meshguard", AuthzPort: 3101, Wasm: wasm}, false},
		{"wasm filter over TLS", Options{ListenerPort: 10000, AuthzHost: "meshguard", AuthzPort: 3101, Wasm: wasm}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Build(exampleCatalogue(t), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if tc.tls {
				if err := r.SecureMeshGuardClusters(&UpstreamTLS{CAFile: "/ca.crt", Host: "meshguard"}, AuthzCluster, HTTPCluster); err != nil {
					t.Fatal(err)
				}
			}
			for _, v := range envoytest.Check(envoytest.Config{Listeners: r.Listeners, Routes: r.Routes, Extensions: r.Extensions}) {
				t.Error(v)
			}
		})
	}
}

// TestOnlyProtocolRoutesSendTheBody: every route of a service declaring an
// agent protocol sends the whole body, bounded by the parser's limit, with
// the protocol and service in its context; no other route sends one
// (the Envoy ingress; proxyless gRPC runs no ext_authz).
func TestOnlyProtocolRoutesSendTheBody(t *testing.T) {
	c := exampleCatalogue(t)
	r, err := Build(c, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	protocols := map[string]agentproto.Protocol{}
	for _, s := range c.Services {
		protocols[s.Name] = s.Protocol
	}
	seen := map[bool]int{} // routes checked, by whether they send the body
	for _, rc := range r.Routes {
		if rc.GetName() != IngressRoutes {
			continue // proxyless gRPC: no ext_authz filter
		}
		for _, vh := range rc.GetVirtualHosts() {
			p, ok := protocols[vh.GetName()]
			if !ok {
				t.Fatalf("virtual host %q: no such service", vh.GetName())
			}
			for _, rt := range vh.GetRoutes() {
				var per extauthzv3.ExtAuthzPerRoute
				if a := rt.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]; a != nil {
					if err := a.UnmarshalTo(&per); err != nil {
						t.Fatalf("route %q: %v", rt.GetName(), err)
					}
				}
				s := per.GetCheckSettings()
				body := s.GetWithRequestBody()
				seen[body != nil]++
				switch {
				case p == "" && body != nil:
					t.Errorf("route %q of a service without a protocol sends the body", rt.GetName())
				case p == "":
				case body == nil:
					t.Errorf("route %q of a %s service sends no body", rt.GetName(), p)
				case body.GetMaxRequestBytes() != agentproto.MaxBody || body.GetAllowPartialMessage() || !body.GetPackAsBytes():
					t.Errorf("route %q: body settings %v, want the whole body as bytes up to %d", rt.GetName(), body, agentproto.MaxBody)
				case s.GetContextExtensions()[extauthz.ContextExtensionProtocol] != string(p) || s.GetContextExtensions()[extauthz.ContextExtensionService] != vh.GetName():
					t.Errorf("route %q: context %v, want protocol %s and service %s", rt.GetName(), s.GetContextExtensions(), p, vh.GetName())
				}
			}
		}
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Fatalf("routes with a body %d, without %d: the catalogue must hold both", seen[true], seen[false])
	}
}
