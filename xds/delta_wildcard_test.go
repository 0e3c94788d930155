package xds

import (
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// TestDeltaExplicitWildcardGetsEveryResource is the incremental protocol's
// side of TestExplicitWildcardGetsEveryResource: "*" subscribed, on the
// first request or a later one, is the wildcard (xDS protocol, "Explicit
// wildcard"), so the stream is sent every endpoint, whatever else it
// names, and every endpoint the next version changes.
func TestDeltaExplicitWildcardGetsEveryResource(t *testing.T) {
	s, addr, all := serveEndpoints(t, 6)
	cases := []struct {
		name  string
		first []string // the first request's subscriptions
		then  []string // a second request's, after the first answer's ACK
	}{
		{"wildcard alone", []string{"*"}, nil},
		{"wildcard and a name", []string{all[2], "*"}, nil},
		{"a name, then the wildcard", []string{all[2]}, []string{"*"}},
	}
	streams := make([]*deltaEDS, len(cases))
	for i, c := range cases {
		cl := dialDeltaEDS(t, addr)
		cl.send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "envoy"}, TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: c.first})
		got := cl.recv()
		if c.then != nil {
			cl.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: cl.nonce, ResourceNamesSubscribe: c.then})
			for _, n := range cl.recv() {
				if !slices.Contains(got, n) {
					got = append(got, n)
				}
			}
		}
		if slices.Sort(got); !slices.Equal(got, all) {
			t.Fatalf("%s: got %v, want every endpoint %v", c.name, got, all)
		}
		cl.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: cl.nonce})
		streams[i] = cl
	}
	if err := s.Update(t.Context(), pushCatalogue(t, 6, 2)); err != nil {
		t.Fatal(err)
	}
	// Incremental: the next version sends what changed, every service's
	// endpoints (moved by the push), not the authz cluster's.
	moved := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return !strings.HasPrefix(n, "svc-") })
	for i, cl := range streams {
		got := cl.recv()
		if slices.Sort(got); !slices.Equal(got, moved) {
			t.Errorf("%s: the next version changed %v, want every moved endpoint %v", cases[i].name, got, moved)
		}
	}
}

// deltaEDS is one incremental ADS stream over real gRPC asking for
// endpoints.
type deltaEDS struct {
	t     *testing.T
	st    discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	nonce string
}

func dialDeltaEDS(t *testing.T, addr string) *deltaEDS {
	t.Helper()
	ads, ctx := dialADS(t, addr)
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &deltaEDS{t: t, st: st}
}

func (c *deltaEDS) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if err := c.st.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// recv is the names of the endpoints the next response carries.
func (c *deltaEDS) recv() []string {
	c.t.Helper()
	resp, err := c.st.Recv()
	if err != nil {
		c.t.Fatal(err)
	}
	c.nonce = resp.GetNonce()
	var names []string
	for _, r := range resp.GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if err := r.GetResource().UnmarshalTo(&cla); err != nil {
			c.t.Fatal(err)
		}
		names = append(names, cla.GetClusterName())
	}
	return names
}
