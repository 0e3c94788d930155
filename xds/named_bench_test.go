package xds

import (
	"fmt"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshguard/meshguard/catalog"
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
