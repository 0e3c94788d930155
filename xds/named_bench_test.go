package xds

import (
	"fmt"
	"strconv"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/internal/envoysub"
)

// BenchmarkNamedResponse: the response to a request naming 20,000
// clusters (a node chooses how many names it sends, up to the 4 MiB of a
// message), against a catalogue of 500 services. Its cost must grow with
// the names given plus the resources held, not with their product.
func BenchmarkNamedResponse(b *testing.B) {
	svcs := make([]catalog.Service, 500)
	for i := range svcs {
		svcs[i] = catalog.Service{Name: fmt.Sprintf("svc-%03d", i), Hosts: []string{fmt.Sprintf("svc-%03d.mesh", i)}, Port: 8080,
			Endpoints: []string{"10.0.0.1:80"}}
	}
	c, err := catalog.New(svcs)
	if err != nil {
		b.Fatal(err)
	}
	r, err := Build(c, Options{ListenerPort: 10000, AuthzHost: "127.0.0.1", AuthzPort: 3101})
	if err != nil {
		b.Fatal(err)
	}
	s := NewServer(b.Context(), nil)
	if err := s.Update(b.Context(), r); err != nil {
		b.Fatal(err)
	}
	e := s.cache.current
	names := make([]string, 20000)
	for i := range names {
		names[i] = fmt.Sprintf("outbound|8080||svc-%03d.mesh-%d", i%1000, i)
	}
	names = append(names, e.types[resourcev3.ClusterType].names[:10]...)
	req := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResourceNames: names}
	for b.Loop() {
		if got := e.response(req); len(got.anys) != 10 {
			b.Fatalf("%d resources, want the 10 named", len(got.anys))
		}
	}
}

// BenchmarkNamedFanout: the server's side of a push to 1,000 streams that
// ask for endpoints and routes by name as Envoy does (the names
// envoysub's subscriber asks for, given the whole clusters and
// listeners): every waiting watch answered, and each response marshalled
// as the ADS stream's Send and the server codec would. No gRPC, no
// client: what the server alone spends.
func BenchmarkNamedFanout(b *testing.B) {
	const n = 1000
	s := NewServer(b.Context(), nil)
	gen := 1
	if err := s.Update(b.Context(), pushCatalogue(b, 20, gen)); err != nil {
		b.Fatal(err)
	}
	// The names an Envoy asks for, from the whole clusters and listeners.
	var asks []*discoveryv3.DiscoveryRequest
	sub := envoysub.New()
	for _, typeURL := range envoysub.Wildcard {
		r, err := s.cache.current.response(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL}).GetDiscoveryResponse()
		if err != nil {
			b.Fatal(err)
		}
		if err := sub.Answer(r, func(req *discoveryv3.DiscoveryRequest) error {
			if len(req.GetResourceNames()) > 0 {
				asks = append(asks, req)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if len(asks) != 2 {
		b.Fatalf("%d named requests, want endpoints and routes", len(asks))
	}
	codec := NewCodec()
	outs := make([]chan cachev3.Response, 0, n*len(asks))
	for b.Loop() {
		b.StopTimer()
		// Every stream holds the current version and waits for the next.
		outs = outs[:0]
		for range n {
			for _, ask := range asks {
				sub := streamv3.NewSotwSubscription(ask.GetResourceNames(), false)
				r := s.cache.current.response(ask)
				sub.SetReturnedResources(r.GetReturnedResources())
				out := make(chan cachev3.Response, 1)
				req := &discoveryv3.DiscoveryRequest{TypeUrl: ask.GetTypeUrl(), VersionInfo: r.GetResponseVersion(), ResourceNames: ask.GetResourceNames()}
				if _, err := s.cache.CreateWatch(req, &sub, out); err != nil {
					b.Fatal(err)
				}
				outs = append(outs, out)
			}
		}
		gen++
		b.StartTimer()
		if err := s.Update(b.Context(), pushCatalogue(b, 20, gen)); err != nil {
			b.Fatal(err)
		}
		for i, out := range outs {
			resp := <-out
			r, err := resp.GetDiscoveryResponse()
			if err != nil {
				b.Fatal(err)
			}
			r.Nonce = strconv.Itoa(i)
			var m any = r
			if w := s.cache.wire(r); w != nil {
				m = &wireResponse{shared: w, nonce: r.Nonce}
			}
			data, err := codec.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			data.Free()
			_ = resp.GetReturnedResources()
		}
	}
}
