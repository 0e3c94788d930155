package xds

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestNamedWasmConfigurationIsNeverShared: the wasm filter's configuration
// is bound to each proxy as it is sent (proxyauth, on the stream's
// DiscoveryResponse), so a named ECDS request, even one that selects a
// shared set of the type, is never sent from a shared encoding (which
// would pass the binding unbound); other types' named sets are.
func TestNamedWasmConfigurationIsNeverShared(t *testing.T) {
	s, addr := serveXDS(t)
	r := pushCatalogue(t, 6, 1)
	r.Extensions = []*corev3.TypedExtensionConfig{
		wasmExtension(&Wasm{Path: "/f.wasm", HTTPHost: "mg", HTTPPort: 3100, Config: []byte(`{"meshguard":{"token":"placeholder"}}`)}),
		{Name: "other", TypedConfig: mustAny(wrapperspb.String("x"))},
	}
	if err := s.Update(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	all := endpointNames(t, s)
	cases := []struct {
		name    string
		typeURL string
		names   []string
		wired   bool
	}{
		{"wasm filter alone", resourcev3.ExtensionConfigType, []string{WasmFilter}, false},
		{"wasm filter again", resourcev3.ExtensionConfigType, []string{WasmFilter, "nobody"}, false},
		{"endpoints, a set", resourcev3.EndpointType, []string{all[0], all[1]}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := dialEDS(t, addr)
			if err := cl.st.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "envoy"}, TypeUrl: c.typeURL, ResourceNames: c.names}); err != nil {
				t.Fatal(err)
			}
			resp, err := cl.st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetResources()) != 1 && c.typeURL == resourcev3.ExtensionConfigType {
				t.Fatalf("%d resources, want the wasm filter's alone", len(resp.GetResources()))
			}
			tp := s.cache.current.types[c.typeURL]
			tp.sets.mu.Lock()
			sets := slices.Collect(maps.Values(tp.sets.byKey))
			tp.sets.mu.Unlock()
			if len(sets) != 1 {
				t.Fatalf("%d named sets of the type, want 1", len(sets))
			}
			// What the stream was sent: the set's list, as the server's
			// response carries it.
			out := &discoveryv3.DiscoveryResponse{VersionInfo: resp.GetVersionInfo(), TypeUrl: c.typeURL, Resources: sets[0].anys, Nonce: "1"}
			if got := s.cache.wire(out) != nil; got != c.wired {
				t.Fatalf("sent from a shared encoding: %v, want %v", got, c.wired)
			}
		})
	}
}

// TestNamedResponsesRacingUpdates: streams naming sets (one a prefix of
// another's, one with every resource but one) while versions change under
// them are each sent, every time, exactly the resources they named with
// the content of the version the response states: never a set of an
// older version under a newer one's name, nor another set's bytes.
func TestNamedResponsesRacingUpdates(t *testing.T) {
	s, addr, all := serveEndpoints(t, 8)
	// all[0] is MeshGuard's own cluster, the same in every version.
	asks := [][]string{
		{all[1], all[2]},
		{all[1], all[2], all[3]}, // the first's list plus one
		{all[3], all[3], "nobody", ""},
		slices.Clone(all[1:]),
		{all[2], all[1]}, // shares the first's set
	}
	const versions = 12
	streams := make([]*edsClient, len(asks))
	for i, names := range asks {
		streams[i] = dialEDS(t, addr)
		streams[i].ask("", names...)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(asks))
	for i, cl := range streams {
		want := slices.Compact(slices.Sorted(slices.Values(slices.DeleteFunc(slices.Clone(asks[i]), func(n string) bool { return !slices.Contains(all, n) }))))
		wg.Go(func() {
			for {
				resp, err := cl.st.Recv()
				if err != nil {
					errs <- err
					return
				}
				v, err := strconv.Atoi(resp.GetVersionInfo())
				if err != nil {
					errs <- err
					return
				}
				var names []string
				for _, a := range resp.GetResources() {
					var cla endpointv3.ClusterLoadAssignment
					if err := a.UnmarshalTo(&cla); err != nil {
						errs <- err
						return
					}
					names = append(names, cla.GetClusterName())
					// pushCatalogue's generation is the address's second octet.
					addr := cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
					if strings.HasPrefix(cla.GetClusterName(), "svc-") && !strings.HasPrefix(addr, fmt.Sprintf("10.%d.", v)) {
						errs <- fmt.Errorf("stream %d: version %d carries %s's address %s, of another version", i, v, cla.GetClusterName(), addr)
						return
					}
				}
				if !slices.Equal(names, want) {
					errs <- fmt.Errorf("stream %d: version %d carries %v, want %v", i, v, names, want)
					return
				}
				if v == versions {
					return
				}
				// An ACK (from this goroutine: ask would end the test from it).
				if err := cl.st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: asks[i]}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for gen := 2; gen <= versions; gen++ {
		if err := s.Update(t.Context(), pushCatalogue(t, 8, gen)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestExplicitWildcardGetsEveryResource: "*" among a request's names is
// the explicit wildcard (xDS protocol, "How the client specifies what
// resources to return"): the stream is sent every resource of the type,
// whatever else it names. It was sent only the other names that exist
// (nothing for "*" alone), and as its subscription is wildcard every ACK
// found resources "not yet sent" and was answered again at once, with
// nothing, until the stream closed. After the ACK nothing is sent until
// the next version.
func TestExplicitWildcardGetsEveryResource(t *testing.T) {
	s, addr, all := serveEndpoints(t, 6)
	cases := []struct {
		name  string
		names []string
	}{
		{"wildcard alone", []string{"*"}},
		{"wildcard and a name", []string{all[2], "*"}},
		{"wildcard and an unknown name", []string{"*", "nobody", "*"}},
	}
	streams := make([]*edsClient, len(cases))
	for i, c := range cases {
		cl := dialEDS(t, addr)
		cl.ask("", c.names...)
		if _, names := cl.recv(); !slices.Equal(names, all) {
			t.Fatalf("%s: got %v, want every endpoint %v", c.name, names, all)
		}
		cl.ask(cl.version, c.names...) // ACK: nothing to send
		streams[i] = cl
	}
	if err := s.Update(t.Context(), pushCatalogue(t, 6, 2)); err != nil {
		t.Fatal(err)
	}
	for i, cl := range streams {
		old := cl.version
		if resp, names := cl.recv(); resp.GetVersionInfo() == old || !slices.Equal(names, all) {
			t.Errorf("%s: after its ACK got version %s (held %s) of %v, want the next version's every endpoint", cases[i].name, resp.GetVersionInfo(), old, names)
		}
	}
}
