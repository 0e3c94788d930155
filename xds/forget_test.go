package xds

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// adsNode is one node on its own ADS stream (state of the world or delta)
// that has received the current version and ACKed it.
type adsNode struct {
	id     string
	cancel context.CancelFunc
	// next waits for the next push, ACKs it and returns its version
	// (state of the world) or its resource's version (delta).
	next func() string
}

func openNode(t *testing.T, ads discoveryv3.AggregatedDiscoveryServiceClient, id string, delta bool) *adsNode {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	n := &adsNode{id: id, cancel: cancel}
	if delta {
		st, err := ads.DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: id}, TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{"echo"}}); err != nil {
			t.Fatal(err)
		}
		n.next = func() string {
			resp, err := st.Recv()
			if err != nil {
				t.Errorf("node %s: %v", id, err)
				return ""
			}
			if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}); err != nil {
				t.Errorf("node %s: %v", id, err)
			}
			return resp.GetSystemVersionInfo()
		}
	} else {
		st, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id, Cluster: "edge"}, TypeUrl: resourcev3.ClusterType}); err != nil {
			t.Fatal(err)
		}
		n.next = func() string {
			resp, err := st.Recv()
			if err != nil {
				t.Errorf("node %s: %v", id, err)
				return ""
			}
			if err := st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
				t.Errorf("node %s: %v", id, err)
			}
			return resp.GetVersionInfo()
		}
	}
	n.next()
	return n
}

// openNodes opens count nodes named prefix-0001…, every third on delta.
func openNodes(t *testing.T, ads discoveryv3.AggregatedDiscoveryServiceClient, prefix string, count int) []*adsNode {
	t.Helper()
	out := make([]*adsNode, count)
	for i := range out {
		out[i] = openNode(t, ads, fmt.Sprintf("%s-%04d", prefix, i), i%3 == 2)
	}
	return out
}

func ids(ns []*adsNode) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.id
	}
	slices.Sort(out)
	return out
}

func statusIDs(ns []NodeStatus) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	slices.Sort(out)
	return out
}

// waitUntil polls cond (the server handles a closed stream on its own
// goroutine) and fails with what it saw if cond never holds.
func waitUntil(t *testing.T, what string, cond func() (bool, any)) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never; last seen %v", what, saw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cacheWatches is what the caches hold for nodes: the snapshot cache's
// keys, and the watches open in either.
func cacheWatches(s *Server) (keys, watches int) {
	watches = s.cache.sotwWatches()
	for _, k := range s.cache.GetStatusKeys() {
		keys++
		if info := s.cache.GetStatusInfo(k); info != nil {
			watches += info.GetNumWatches() + info.GetNumDeltaWatches()
		}
	}
	return keys, watches
}

// TestNodesThatLeaveAreForgotten: many nodes connect over real ADS streams
// (state of the world and delta) and most leave. What the server keeps
// returns to the live nodes: Status lists them only, the cache holds one
// key and a watch per live stream, and only the last MaxGone nodes gone
// are shown, latest first. The live nodes still get new versions; a gone
// node that comes back is live again and no longer gone.
func TestNodesThatLeaveAreForgotten(t *testing.T) {
	s, ads := serveWithClient(t)
	stay := openNodes(t, ads, "stay", 10)
	first := openNodes(t, ads, "early", 150)
	last := openNodes(t, ads, "late", MaxGone)
	if got := s.Connected(); got != len(stay)+len(first)+len(last) {
		t.Fatalf("%d connected", got)
	}

	// The early ones leave, then the late ones: the late ones are the
	// last MaxGone gone.
	for _, group := range [][]*adsNode{first, last} {
		for _, n := range group {
			n.cancel()
		}
		want := len(stay)
		if slices.Equal(ids(group), ids(first)) {
			want += len(last)
		}
		waitUntil(t, fmt.Sprintf("%d nodes connected", want), func() (bool, any) {
			return s.Connected() == want && len(s.Status().Nodes) == want, s.Connected()
		})
	}

	st := s.Status()
	if got := statusIDs(st.Nodes); !slices.Equal(got, ids(stay)) {
		t.Fatalf("status lists %d nodes: %v", len(got), got)
	}
	waitUntil(t, "the cache holds at most one key and the live streams' watches", func() (bool, any) {
		keys, watches := cacheWatches(s)
		return keys <= 1 && watches == len(stay), fmt.Sprintf("%d keys, %d watches", keys, watches)
	})
	if got := statusIDs(st.Gone); !slices.Equal(got, ids(last)) {
		t.Fatalf("gone: %d nodes, want the %d that left last: %v", len(got), len(last), got)
	}
	for i, g := range st.Gone {
		if g.Streams != 0 || g.Left.IsZero() || (i > 0 && g.Left.After(st.Gone[i-1].Left)) {
			t.Fatalf("gone[%d] %+v: want no stream, when it left, latest first", i, g)
		}
	}

	// The live nodes get the next version.
	if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.2:80")); err != nil {
		t.Fatal(err)
	}
	for _, n := range stay {
		if v := n.next(); v == "" {
			t.Fatalf("node %s got no new version", n.id)
		}
	}

	// A gone node comes back: live, with the current version, not gone.
	back := openNode(t, ads, last[0].id, false)
	waitUntil(t, "the node that came back is live", func() (bool, any) {
		st := s.Status()
		return slices.Contains(statusIDs(st.Nodes), back.id) && !slices.Contains(statusIDs(st.Gone), back.id) && len(st.Gone) == MaxGone-1, st.Gone
	})
}

// TestFetchServesTheCurrentVersion: a unary fetch (no stream) gets the
// current resources every time and leaves nothing behind for its node.
// (A fetching node's snapshot used to be kept for ever, and never updated.)
func TestFetchServesTheCurrentVersion(t *testing.T) {
	s, addr := serveXDS(t)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	cds := clusterservice.NewClusterDiscoveryServiceClient(conn)
	for i, endpoint := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"} {
		if err := s.Update(t.Context(), echoCatalogue(t, endpoint)); err != nil {
			t.Fatal(err)
		}
		resp, err := cds.FetchClusters(t.Context(), &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "fetcher"}, TypeUrl: resourcev3.ClusterType})
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.Itoa(i + 1); resp.GetVersionInfo() != want {
			t.Fatalf("fetch %d: version %q, want %s", i+1, resp.GetVersionInfo(), want)
		}
	}
	if keys, _ := cacheWatches(s); keys > 1 {
		t.Fatalf("the cache holds %d keys after fetches alone", keys)
	}
}
