package xds

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestStatusTracksAcksAndNacks: a node's ACK and NACK show in Status, a
// NACK does not stop the node from getting later versions, and a closed
// stream counts as disconnected.
func TestStatusTracksAcksAndNacks(t *testing.T) {
	ctx := t.Context()
	s, ads := serveWithClient(t)
	sctx, cancel := context.WithCancel(ctx)
	stream, err := ads.StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *discoveryv3.DiscoveryRequest) {
		t.Helper()
		r.TypeUrl = resourcev3.ClusterType
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "envoy-7", Cluster: "edge"}})
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	// The node refuses version 1 and keeps nothing.
	send(&discoveryv3.DiscoveryRequest{ResponseNonce: resp.GetNonce(), ErrorDetail: &statuspb.Status{Code: 3, Message: "cluster echo: bad lb policy"}})
	// A new version still reaches it, and it ACKs that one.
	if err := s.Update(ctx, echoCatalogue(t, "10.0.0.2:80")); err != nil {
		t.Fatal(err)
	}
	// (The server may first send the refused version again.)
	for resp.GetVersionInfo() != "2" {
		if resp, err = stream.Recv(); err != nil {
			t.Fatal(err)
		}
		send(&discoveryv3.DiscoveryRequest{VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
	}
	var n NodeStatus
	for deadline := time.Now().Add(5 * time.Second); ; {
		st := s.Status()
		if len(st.Nodes) == 1 && st.Nodes[0].Acked["Cluster"] == "2" {
			n = st.Nodes[0]
			if st.Version != "2" {
				t.Fatalf("version %q", st.Version)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n.ID != "envoy-7" || n.Cluster != "edge" || n.Streams != 1 || n.LastNack == nil ||
		n.LastNack.Type != "Cluster" || n.LastNack.Error != "cluster echo: bad lb policy" || s.Connected() != 1 {
		t.Fatalf("node %+v, nack %+v", n, n.LastNack)
	}
	cancel()
	for deadline := time.Now().Add(5 * time.Second); s.Connected() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("still %d connected after the stream closed", s.Connected())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeltaADS: a delta-xDS stream gets the clusters, then only what a new
// version changes, and its ACK shows in Status.
func TestDeltaADS(t *testing.T) {
	ctx := t.Context()
	s, ads := serveWithClient(t)
	stream, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "delta-1"}, TypeUrl: resourcev3.EndpointType,
		ResourceNamesSubscribe: []string{"echo"}}); err != nil {
		t.Fatal(err)
	}
	recv := func() *discoveryv3.DeltaDiscoveryResponse {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := recv()
	if len(first.GetResources()) != 1 || first.GetResources()[0].GetName() != "echo" {
		t.Fatalf("first delta: %v", first.GetResources())
	}
	// The endpoints change: the delta carries the new assignment.
	if err := s.Update(ctx, echoCatalogue(t, "10.0.0.2:80")); err != nil {
		t.Fatal(err)
	}
	second := recv()
	if len(second.GetResources()) != 1 || second.GetResources()[0].GetVersion() == first.GetResources()[0].GetVersion() {
		t.Fatalf("second delta: %v", second.GetResources())
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		st := s.Status()
		if len(st.Nodes) == 1 && st.Nodes[0].ID == "delta-1" && st.Nodes[0].Acked["ClusterLoadAssignment"] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serveWithClient runs a Server holding the echo catalogue and returns an
// ADS client connected to it over loopback.
func serveWithClient(t *testing.T) (*Server, discoveryv3.AggregatedDiscoveryServiceClient) {
	t.Helper()
	s, addr := serveXDS(t)
	if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.1:80")); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return s, discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
}

// TestUpdateSkipsUnchanged: a reload that changes nothing pushes nothing.
func TestUpdateSkipsUnchanged(t *testing.T) {
	s := NewServer(t.Context(), nil)
	for range 3 {
		if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.1:80")); err != nil {
			t.Fatal(err)
		}
	}
	if v := s.Status().Version; v != "1" {
		t.Fatalf("version %q after three identical updates", v)
	}
	if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.2:80")); err != nil || s.Status().Version != "2" {
		t.Fatalf("a change: version %q, %v", s.Status().Version, err)
	}
}

// TestTrackerBoundsWhatNodesSend: what a node sends is kept bounded: its id
// and cluster, the resource types it ACKs, its NACK's message; and however
// many nodes come and go, MaxGone of them are kept.
func TestTrackerBoundsWhatNodesSend(t *testing.T) {
	long := strings.Repeat("x", 10*maxNodeField)
	tr := newTracker()
	stream := streamID{n: 1}
	tr.request(stream, &corev3.Node{Id: long, Cluster: long}, resourcev3.ClusterType, "", "", nil)
	for i := range 4 * maxAckedTypes {
		tr.request(stream, nil, fmt.Sprintf("type.googleapis.com/made.up.Type%d", i), "1", "n", nil)
	}
	tr.request(stream, nil, resourcev3.ClusterType, "", "n", &statuspb.Status{Message: long})
	live, _ := tr.snapshot()
	if len(live) != 1 {
		t.Fatalf("%d nodes", len(live))
	}
	n := live[0]
	for _, tc := range []struct {
		name string
		got  int
		max  int
	}{
		{"id", len(n.ID), maxNodeField + len("…")},
		{"cluster", len(n.Cluster), maxNodeField + len("…")},
		{"acked types", len(n.Acked), maxAckedTypes},
		{"nack message", len(n.LastNack.Error), maxErrorLen + len("…")},
	} {
		if tc.got > tc.max {
			t.Errorf("%s: %d kept, at most %d expected", tc.name, tc.got, tc.max)
		}
	}

	for i := range 3 * MaxGone {
		s := streamID{delta: i%2 == 0, n: int64(100 + i)}
		tr.request(s, &corev3.Node{Id: fmt.Sprintf("pod-%d", i)}, resourcev3.ClusterType, "", "", nil)
		tr.closed(s)
	}
	live, gone := tr.snapshot()
	if len(live) != 1 || len(gone) != MaxGone || gone[0].ID != fmt.Sprintf("pod-%d", 3*MaxGone-1) || len(tr.streams) != 1 {
		t.Fatalf("%d live, %d gone (latest %q), %d streams tracked", len(live), len(gone), gone[0].ID, len(tr.streams))
	}
}
