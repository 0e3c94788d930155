package xds

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Server serves the current resources to every node over ADS (state of
// the world and delta) and the per-type discovery services, on
// MeshGuard's gRPC port.
//
// Every node gets the same resources, so one snapshot is kept and handed
// to each node when it first asks. The cache runs in non-ADS mode: in ADS
// mode go-control-plane answers a request naming some resources only when
// the snapshot holds no others of the type, and gRPC's xDS client asks for
// the one listener it dials.
type Server struct {
	cache cachev3.SnapshotCache
	xds   serverv3.Server
	log   *slog.Logger
	track *tracker

	mu      sync.Mutex
	current *cachev3.Snapshot
	version int
	digest  [sha256.Size]byte // of the current resources
}

// NewServer makes a server with no resources yet: nodes that connect wait
// for the first Update.
func NewServer(ctx context.Context, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), log: log, track: newTracker()}
	s.xds = serverv3.NewServer(ctx, s.cache, serverv3.CallbackFuncs{
		StreamRequestFunc: func(id int64, r *discoveryv3.DiscoveryRequest) error {
			s.seen(r.GetNode())
			s.onSotW(id, r)
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			s.seen(r.GetNode())
			s.onDelta(id, r)
			return nil
		},
		StreamClosedFunc:      func(id int64, _ *corev3.Node) { s.track.closed(id) },
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.track.closed(id) },
		FetchRequestFunc: func(_ context.Context, r *discoveryv3.DiscoveryRequest) error {
			s.seen(r.GetNode())
			return nil
		},
	})
	return s
}

// Register adds the discovery services to g.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
}

// Update makes r the resources every node is served, as a new version —
// unless they are the resources served already (a reload that changed
// nothing pushes nothing).
func (s *Server) Update(ctx context.Context, r *Resources) error {
	d, err := r.digest()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current != nil && d == s.digest {
		return nil
	}
	s.digest = d
	s.version++
	snap, err := cachev3.NewSnapshot(strconv.Itoa(s.version), map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType:        asResources(r.Listeners),
		resourcev3.RouteType:           asResources(r.Routes),
		resourcev3.ClusterType:         asResources(r.Clusters),
		resourcev3.EndpointType:        asResources(r.Endpoints),
		resourcev3.ExtensionConfigType: asResources(r.Extensions),
	})
	if err != nil {
		return fmt.Errorf("xds: snapshot %d: %w", s.version, err)
	}
	s.current = snap
	for _, node := range s.cache.GetStatusKeys() {
		if err := s.cache.SetSnapshot(ctx, node, snap); err != nil {
			return fmt.Errorf("xds: snapshot %d for node %q: %w", s.version, node, err)
		}
	}
	s.log.Info("xds: new resources", "version", s.version, "nodes", len(s.cache.GetStatusKeys()))
	return nil
}

// seen gives a node that asks for the first time the current snapshot.
// (Only a stream's first request carries the node.)
func (s *Server) seen(node *corev3.Node) {
	id := node.GetId()
	if id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return
	}
	if _, err := s.cache.GetSnapshot(id); err == nil {
		return
	}
	if err := s.cache.SetSnapshot(context.Background(), id, s.current); err != nil {
		s.log.Error("xds: serving a new node failed", "node", id, "error", err)
	}
}

func asResources[T types.Resource](rs []T) []types.Resource {
	out := make([]types.Resource, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

// digest hashes the resources' deterministic encoding.
func (r *Resources) digest() ([sha256.Size]byte, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, group := range [][]proto.Message{asMessages(r.Listeners), asMessages(r.Routes), asMessages(r.Clusters), asMessages(r.Endpoints), asMessages(r.Extensions)} {
		for _, m := range group {
			b, err := opts.Marshal(m)
			if err != nil {
				return [sha256.Size]byte{}, fmt.Errorf("xds: encoding a resource: %w", err)
			}
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
		h.Write([]byte{0xff}) // group separator
	}
	return [sha256.Size]byte(h.Sum(nil)), nil
}

func asMessages[T proto.Message](rs []T) []proto.Message {
	out := make([]proto.Message, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}
