package xds

import (
	"fmt"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// A push to a thousand streams marshalled the same DiscoveryResponse a
// thousand times, one buffer each (≈ 26 KB a stream with bench/memory's
// 20 services), all queued at once: the largest transient of a push. Each
// version's response of a type is marshalled once, without its nonce, and
// a stream sends those bytes followed by its nonce field: a protobuf
// parser reads a message's fields in any order, so the result is the
// message the stream would have sent.

// wireResponse is a DiscoveryResponse already encoded: the shared bytes
// and the stream's nonce. Only Codec marshals it.
type wireResponse struct {
	shared []byte
	nonce  string
}

// Codec is gRPC's protobuf codec that also sends a wireResponse's bytes
// as they are. The server's streams all use it (Server.ServerOption):
// any other message goes to the protobuf codec.
type Codec struct{ proto encoding.CodecV2 }

// NewCodec returns the codec.
func NewCodec() *Codec { return &Codec{proto: encoding.GetCodecV2(protoenc.Name)} }

// ServerOption is the option the gRPC server s registers with must be
// made with for s to send shared encodings: without it, s sends every
// stream its own (the protobuf codec knows no wireResponse).
func (s *Server) ServerOption() grpc.ServerOption {
	s.wire.Store(true)
	return grpc.ForceServerCodecV2(NewCodec())
}

// Marshal encodes v: a wireResponse as its shared bytes (not copied: a
// SliceBuffer is never returned to a pool) and its nonce field.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) {
	w, ok := v.(*wireResponse)
	if !ok {
		return c.proto.Marshal(v)
	}
	nonce := protowire.AppendTag(nil, nonceField, protowire.BytesType)
	nonce = protowire.AppendString(nonce, w.nonce)
	return mem.BufferSlice{mem.SliceBuffer(w.shared), mem.SliceBuffer(nonce)}, nil
}

func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }
func (c *Codec) Name() string                                { return c.proto.Name() }

// nonceField is DiscoveryResponse.nonce's field number.
const nonceField = 5

// wireEncode marshals a response many streams are sent (no nonce): a
// type's whole, or a shared named set (named.go).
func wireEncode(version, typeURL string, anys []*anypb.Any) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&discoveryv3.DiscoveryResponse{VersionInfo: version, Resources: anys, TypeUrl: typeURL})
	if err != nil {
		return nil, fmt.Errorf("xds: encoding the %s response: %w", typeURL, err)
	}
	return b, nil
}

// wired says whether a type's responses may be sent as shared bytes:
// not the wasm filter's configuration, which the server binds to each
// proxy as it sends it (proxyauth).
func wired(typeURL string) bool { return typeURL != resourcev3.ExtensionConfigType }

// adsServer sends a version's whole-type responses as their shared
// encoding.
type adsServer struct {
	discoveryv3.AggregatedDiscoveryServiceServer
	cache *sharedCache
}

func (a adsServer) StreamAggregatedResources(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return a.AggregatedDiscoveryServiceServer.StreamAggregatedResources(wireStream{st, a.cache})
}

type wireStream struct {
	discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	cache *sharedCache
}

// Send sends r as its version's shared encoding when it is exactly that
// response plus a nonce; otherwise (a named set past the bound, a version
// no longer current, the wasm filter's) as it is.
func (s wireStream) Send(r *discoveryv3.DiscoveryResponse) error {
	if b := s.cache.wire(r); b != nil {
		return s.SendMsg(&wireResponse{shared: b, nonce: r.GetNonce()})
	}
	return s.AggregatedDiscoveryService_StreamAggregatedResourcesServer.Send(r)
}
