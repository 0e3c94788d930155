package cli

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/xds"
)

// TestXDSStatus: meshguard xds status lists a connected node, the version
// it ACKed and its last NACK.
func TestXDSStatus(t *testing.T) {
	l := newLive(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	l.xds.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	c, err := catalog.New([]catalog.Service{{Name: "orders", Hosts: []string{"orders.mesh"}, Port: 80, Endpoints: []string{"10.0.0.7:80"}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := xds.Build(c, xds.Options{ListenerPort: 10000, AuthzHost: "127.0.0.1", AuthzPort: 3101})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.xds.Update(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "envoy-9", Cluster: "edge"}, TypeUrl: typ}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if resp.GetTypeUrl() == resourcev3.ListenerType {
			ack = &discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce(), ErrorDetail: &statuspb.Status{Message: "listener meshguard_ingress: unknown filter"}}
		}
		if err := stream.Send(ack); err != nil {
			t.Fatal(err)
		}
	}
	var out string
	for deadline := time.Now().Add(5 * time.Second); ; {
		out = l.must(t, "xds", "status")
		if strings.Contains(out, "Cluster=1") && strings.Contains(out, "unknown filter") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("xds status:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"current version: 1, 1 node, 0 recently gone", "envoy-9", "edge", "Listener: listener meshguard_ingress: unknown filter"} {
		if !strings.Contains(out, want) {
			t.Fatalf("xds status lacks %q:\n%s", want, out)
		}
	}

	// The node leaves: it is listed as gone, with what it had ACKed.
	cancel()
	for deadline := time.Now().Add(5 * time.Second); ; {
		out = l.must(t, "xds", "status")
		if strings.Contains(out, "0 nodes, 1 recently gone") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("xds status after the node left:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, gone, ok := strings.Cut(out, "recently gone (")
	if !ok || !strings.Contains(gone, "LEFT") || !strings.Contains(gone, "envoy-9") || !strings.Contains(gone, "Cluster=1") || strings.Contains(out, "STREAMS") {
		t.Fatalf("xds status after the node left:\n%s", out)
	}
}
