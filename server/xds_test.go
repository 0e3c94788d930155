package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/config"
)

const servicesV1 = `services:
  - {name: orders, hosts: [orders.mesh], port: 8080, endpoints: ["10.0.0.7:8080"]}
`

const servicesV2 = `services:
  - {name: orders, hosts: [orders.mesh], port: 8080, endpoints: ["10.0.0.7:8080"]}
  - {name: billing, hosts: [billing.mesh], port: 8080, endpoints: ["10.0.0.8:8080"]}
`

// TestServeXDS: an Envoy's ADS stream on the gRPC port gets the clusters
// of SERVICES_FILE; a broken file is read and refused (the server says
// so) and the last good catalogue stays served, at its version; the next
// good file is pushed as the next version; so is a service put through
// the admin API.
func TestServeXDS(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(file, []byte(servicesV1), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := newLogEvents()
	r := runWith(t, configWith(t, func(c *config.Config) { c.ServicesFile = file }), Options{Logger: slog.New(logs)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clusters := watchClusters(ctx, t, r, "envoy-1")
	v1, names := clusters()
	if !slices.Equal(names, []string{"meshguard_authz", "orders"}) {
		t.Fatalf("clusters %v", names)
	}

	// The broken file is read and refused: the server logs why, every
	// problem at its line, before anything is asserted about what it serves.
	mark := logs.mark()
	replaceFile(t, file, "services:\n"+
		`  - {name: orders, hosts: [orders.mesh], port: 99999, endpoints: ["10.0.0.7:8080"]}`+"\n"+
		`  - {name: orders, hosts: [more.mesh], port: 80, endpoints: ["10.0.0.8"]}`+"\n")
	refused := logs.wait(t, mark, "the broken catalogue refused", func(l logLine) bool {
		return l.msg == "service catalogue reload failed; the last good catalogue stays served"
	})
	for _, want := range []string{
		`services.yaml:2: services[0] (orders): port: 99999: expected 1 to 65535`,
		`services.yaml:3: services[1] (orders): name: "orders" is also services[0]`,
		`services.yaml:3: services[1] (orders): endpoints[0]: "10.0.0.8": expected host:port`,
	} {
		if !strings.Contains(refused.attrs["error"], want) {
			t.Fatalf("the refusal does not show %q: %q", want, refused.attrs["error"])
		}
	}
	// An Envoy connecting now gets the last good catalogue, at its version.
	late, hangUp := context.WithCancel(ctx)
	v, names := watchClusters(late, t, r, "envoy-after-the-broken-file")()
	hangUp()
	if v != v1 || !slices.Equal(names, []string{"meshguard_authz", "orders"}) {
		t.Fatalf("after the broken file: version %s (want %s), clusters %v", v, v1, names)
	}

	// The next good file is the next version: the broken one made none.
	replaceFile(t, file, servicesV2)
	v2, names := clusters()
	if n1, _ := strconv.Atoi(v1); v2 != strconv.Itoa(n1+1) || !slices.Equal(names, []string{"billing", "meshguard_authz", "orders"}) {
		t.Fatalf("after the change: version %s→%s (want %d), clusters %v", v1, v2, n1+1, names)
	}

	// A service put through the admin API is pushed too.
	if _, err := r.admin.PutService(ctx, api.Service{Name: "ledger", Hosts: []string{"ledger.mesh"}, Port: 8080, Endpoints: []string{"10.0.0.9:8080"}}); err != nil {
		t.Fatal(err)
	}
	v3, names := clusters()
	if v3 == v2 || !slices.Equal(names, []string{"billing", "ledger", "meshguard_authz", "orders"}) {
		t.Fatalf("after PUT: clusters %v", names)
	}
	v2 = v3

	// The admin API (meshguard xds status) shows the node and what it ACKed.
	eventually(t, "the node's ACK in /admin/xds/status", func() bool {
		st, err := r.admin.XDSStatus(ctx)
		return err == nil && st.Version == v2 && len(st.Nodes) == 1 && st.Nodes[0].ID == "envoy-1" &&
			st.Nodes[0].Streams == 1 && st.Nodes[0].Acked["Cluster"] == v2
	})
}

// watchClusters opens an ADS stream to r as node and returns a function
// that waits for the next cluster push, ACKs it as Envoy does, and returns
// its version and cluster names (sorted).
func watchClusters(ctx context.Context, t *testing.T, r *running, node string) func() (string, []string) {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(r.grpc).StreamAggregatedResources(asProxy(ctx, testProxyToken))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node}, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	return func() (string, []string) {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range resp.GetResources() {
			var c clusterv3.Cluster
			if err := a.UnmarshalTo(&c); err != nil {
				t.Fatal(err)
			}
			names = append(names, c.GetName())
		}
		slices.Sort(names)
		if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		return resp.GetVersionInfo(), names
	}
}

// TestAgentChangesPushNothingWithoutWasm: without the wasm filter, agents
// are no part of the xDS resources, yet every agent change regenerates
// them; what comes out is the same bytes, so a connected Envoy gets no new
// version. The next version it sees is the one a real change makes, the
// one after the version it has. (Before the Anys were packed
// deterministically, most regenerations of a catalogue with minTier and
// actions were a "new" version pushed to every node.)
func TestAgentChangesPushNothingWithoutWasm(t *testing.T) {
	r := start(t, func(c *config.Config) { c.ServicesFile = filepath.Join("..", "examples", "services.yaml") })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clusters := watchClusters(ctx, t, r, "envoy-quiet")
	v1, _ := clusters()
	for i := range 20 {
		r.agent(t, "quiet-"+strconv.Itoa(i))
	}
	if _, err := r.admin.PutService(ctx, api.Service{Name: "ledger", Hosts: []string{"ledger.mesh"}, Port: 8080, Endpoints: []string{"10.0.0.9:8080"}}); err != nil {
		t.Fatal(err)
	}
	v2, names := clusters()
	n1, _ := strconv.Atoi(v1)
	if v2 != strconv.Itoa(n1+1) || !slices.Contains(names, "ledger") {
		t.Fatalf("after 20 agents and one service: version %s → %s (want %d), clusters %v", v1, v2, n1+1, names)
	}
}
