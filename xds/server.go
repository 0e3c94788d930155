package xds

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

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
// Every node gets the same resources, so the cache holds one snapshot under
// one key (sameForAll) that every node's watches hang from: it keeps
// nothing per node, so nodes coming and going grow neither the cache nor
// the fan-out of an Update (per-node keys were never deleted). What is
// known of each node is the tracker's, which forgets nodes that leave
// (keeping the last MaxGone of them). The cache runs in non-ADS mode: in
// ADS mode go-control-plane answers a request naming some resources only
// when the snapshot holds no others of the type, and gRPC's xDS client asks
// for the one listener it dials.
type Server struct {
	cache *sharedCache
	xds   serverv3.Server
	log   *slog.Logger
	track *tracker
	types *streamTypes // the type URLs each stream named (streamtypes.go)
	wire  atomic.Bool  // ServerOption was taken: ADS streams send shared encodings

	mu      sync.Mutex
	version int
	digest  [sha256.Size]byte // of the current resources
}

// sameForAll keys every node to the one snapshot.
type sameForAll struct{}

// allNodes is the cache key of the snapshot every node gets.
const allNodes = "*"

func (sameForAll) ID(*corev3.Node) string { return allNodes }

// NewServer makes a server with no resources yet: nodes that connect wait
// for the first Update.
func NewServer(ctx context.Context, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cache: newSharedCache(cachev3.NewSnapshotCache(false, sameForAll{}, nil)), log: log, track: newTracker(), types: newStreamTypes()}
	s.xds = serverv3.NewServer(ctx, s.cache, serverv3.CallbackFuncs{
		StreamRequestFunc: func(id int64, r *discoveryv3.DiscoveryRequest) error {
			if err := s.types.admit(streamID{n: id}, r.GetTypeUrl()); err != nil {
				return err
			}
			s.onSotW(id, r)
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			if err := s.types.admit(streamID{delta: true, n: id}, r.GetTypeUrl()); err != nil {
				return err
			}
			s.onDelta(id, r)
			return nil
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) {
			s.track.closed(streamID{n: id})
			s.types.closed(streamID{n: id})
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) {
			s.track.closed(streamID{delta: true, n: id})
			s.types.closed(streamID{delta: true, n: id})
		},
	})
	return s
}

// Register adds the discovery services to g. If g was made with
// s.ServerOption, a version's responses go to every ADS stream from one
// encoding (wire.go); else each stream's is encoded for it.
func (s *Server) Register(g *grpc.Server) {
	if s.wire.Load() {
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, adsServer{s.xds, s.cache})
	} else {
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	}
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
	if s.version > 0 && d == s.digest {
		return nil
	}
	// A version number is never reused, even when setting it failed: a
	// node that got it would never be sent different resources under it.
	s.version++
	version := s.version
	resources := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType:        asResources(r.Listeners),
		resourcev3.RouteType:           asResources(r.Routes),
		resourcev3.ClusterType:         asResources(r.Clusters),
		resourcev3.EndpointType:        asResources(r.Endpoints),
		resourcev3.ExtensionConfigType: asResources(r.Extensions),
	}
	snap, err := cachev3.NewSnapshot(strconv.Itoa(version), resources)
	if err != nil {
		return fmt.Errorf("xds: snapshot %d: %w", version, err)
	}
	enc, err := encode(strconv.Itoa(version), resources)
	if err != nil {
		return fmt.Errorf("xds: snapshot %d: %w", version, err)
	}
	if err := s.cache.SetSnapshot(ctx, allNodes, snap); err != nil {
		return fmt.Errorf("xds: snapshot %d: %w", version, err)
	}
	s.cache.set(enc)
	s.digest = d
	s.log.Info("xds: new resources", "version", version, "nodes", s.track.connected())
	return nil
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
