package xds

import (
	"testing"
	"unsafe"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// TestWireResponseIsTheResponse: a whole-type response goes out as its
// version's one encoding (the same bytes for every stream, not copied)
// followed by the stream's nonce, and those bytes read back as the very
// response the stream would have marshalled; anything else — a version
// no longer current, the wasm filter's configuration, which is bound per
// proxy — is sent as it is (a named subset has its own shared encoding:
// TestNamedWireIsTheResponse).
func TestWireResponseIsTheResponse(t *testing.T) {
	s := NewServer(t.Context(), nil)
	if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.1:80")); err != nil {
		t.Fatal(err)
	}
	respond := func(typeURL string, names ...string) *discoveryv3.DiscoveryResponse {
		t.Helper()
		sub := streamv3.NewSotwSubscription(names, true)
		out := make(chan cachev3.Response, 1)
		if _, err := s.cache.CreateWatch(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names}, &sub, out); err != nil {
			t.Fatal(err)
		}
		r, err := (<-out).GetDiscoveryResponse()
		if err != nil {
			t.Fatal(err)
		}
		r.Nonce = "17" // as the server sets it
		return r
	}
	codec := NewCodec()
	for _, typeURL := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType} {
		t.Run(typeURL, func(t *testing.T) {
			want := respond(typeURL)
			shared := s.cache.wire(want)
			if shared == nil {
				t.Fatal("a whole-type response of the current version is not sent from the shared encoding")
			}
			if again := s.cache.wire(respond(typeURL)); unsafe.SliceData(again) != unsafe.SliceData(shared) {
				t.Fatal("two streams' responses have two encodings")
			}
			data, err := codec.Marshal(&wireResponse{shared: shared, nonce: want.GetNonce()})
			if err != nil {
				t.Fatal(err)
			}
			if unsafe.SliceData(data[0].ReadOnlyData()) != unsafe.SliceData(shared) {
				t.Fatal("the codec copied the shared encoding")
			}
			var got discoveryv3.DiscoveryResponse
			if err := proto.Unmarshal(data.Materialize(), &got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&got, want) {
				t.Fatalf("sent %v, want %v", &got, want)
			}
		})
	}
	named := respond(resourcev3.ClusterType, "echo")
	if len(named.GetResources()) == 0 {
		t.Fatal("the named request got nothing")
	}
	if w := s.cache.wire(named); w != nil && &w[0] == &s.cache.wire(respond(resourcev3.ClusterType))[0] {
		t.Error("a named request's subset is sent as the whole type's encoding")
	}
	old := respond(resourcev3.ClusterType)
	if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.2:80")); err != nil {
		t.Fatal(err)
	}
	if s.cache.wire(old) != nil {
		t.Error("a response of an older version is sent as the current one's encoding")
	}
	if wired(resourcev3.ExtensionConfigType) {
		t.Error("the wasm filter's configuration, bound to each proxy as it is sent, would be sent unbound")
	}
	// A field the shared encoding lacks is never dropped.
	canary := respond(resourcev3.ClusterType)
	canary.Canary = true
	if s.cache.wire(canary) != nil {
		t.Error("a response with a field the encoding lacks is sent as the encoding")
	}
}

// BenchmarkCodecMarshal: what the server codec adds to every other
// message the server sends (a Check's answer, say): one type test before
// gRPC's protobuf codec, against that codec alone.
func BenchmarkCodecMarshal(b *testing.B) {
	m := &discoveryv3.DiscoveryRequest{VersionInfo: "12", TypeUrl: resourcev3.ClusterType, ResponseNonce: "7", ResourceNames: []string{"a", "b"}}
	for _, c := range []struct {
		name  string
		codec interface {
			Marshal(any) (mem.BufferSlice, error)
		}
	}{{"proto", encoding.GetCodecV2(protoenc.Name)}, {"server", NewCodec()}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d, err := c.codec.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				d.Free()
			}
		})
	}
}
