package xds

import (
	"context"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// edsClient is one ADS stream over real gRPC that asks for endpoints by
// name, as an Envoy does.
type edsClient struct {
	t       *testing.T
	st      discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	version string // the last response's
	nonce   string
}

func dialEDS(t *testing.T, addr string) *edsClient {
	t.Helper()
	ads, ctx := dialADS(t, addr)
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &edsClient{t: t, st: st}
}

// dialADS is an ADS client on its own connection to addr, and a context
// for its streams; both end with the test.
func dialADS(t *testing.T, addr string) (discoveryv3.AggregatedDiscoveryServiceClient, context.Context) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return discoveryv3.NewAggregatedDiscoveryServiceClient(conn), ctx
}

// ask asks for the endpoints names names, at version (an ACK of the last
// response if it is that one's).
func (c *edsClient) ask(version string, names ...string) {
	c.t.Helper()
	req := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, VersionInfo: version, ResponseNonce: c.nonce, ResourceNames: names}
	if c.nonce == "" {
		req.Node = &corev3.Node{Id: "envoy"}
	}
	if err := c.st.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// recv is the next response and the names of the endpoints it carries.
func (c *edsClient) recv() (*discoveryv3.DiscoveryResponse, []string) {
	c.t.Helper()
	resp, err := c.st.Recv()
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.GetNonce() == "" {
		c.t.Fatal("a response without a nonce")
	}
	c.version, c.nonce = resp.GetVersionInfo(), resp.GetNonce()
	var names []string
	for _, a := range resp.GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if err := a.UnmarshalTo(&cla); err != nil {
			c.t.Fatal(err)
		}
		names = append(names, cla.GetClusterName())
	}
	return resp, names
}

// endpointNames are the current version's endpoints, in name order.
func endpointNames(t *testing.T, s *Server) []string {
	t.Helper()
	names := s.cache.current.types[resourcev3.EndpointType].names
	if len(names) < 4 {
		t.Fatalf("%d endpoints, want 4 or more", len(names))
	}
	return names
}

// serveEndpoints serves pushCatalogue(n, 1) over real gRPC: the server,
// its address and its endpoints' names.
func serveEndpoints(t *testing.T, n int) (*Server, string, []string) {
	t.Helper()
	s, addr := serveXDS(t)
	if err := s.Update(t.Context(), pushCatalogue(t, n, 1)); err != nil {
		t.Fatal(err)
	}
	return s, addr, endpointNames(t, s)
}

// TestNamedResponsesShareOneEncoding: streams naming the same endpoints
// (in any order, with names that do not exist) are sent the same
// resources from one encoding, each with its own nonce, and receive
// exactly the named resources that exist; a stream naming another set
// gets its own; names covering every resource get the whole-type
// encoding.
func TestNamedResponsesShareOneEncoding(t *testing.T) {
	s, addr, all := serveEndpoints(t, 6)
	cases := []struct {
		name  string
		asks  []string
		want  []string
		group int // streams of one group are sent the same bytes
	}{
		{"first", []string{all[3], "nobody", all[1]}, []string{all[1], all[3]}, 1},
		{"same set, other order", []string{all[1], all[3], all[3]}, []string{all[1], all[3]}, 1},
		{"another set", []string{all[2]}, []string{all[2]}, 2},
		{"every resource", append([]string{"nobody"}, all...), all, 3},
	}
	got := map[int]*discoveryv3.DiscoveryResponse{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := dialEDS(t, addr)
			cl.ask("", c.asks...)
			resp, names := cl.recv()
			if !slices.Equal(names, c.want) {
				t.Fatalf("got endpoints %v, want %v", names, c.want)
			}
			resp.Nonce = "" // each stream's own
			if first, ok := got[c.group]; ok {
				if !proto.Equal(first, resp) {
					t.Errorf("the same set was sent as %v and as %v", first, resp)
				}
			}
			got[c.group] = resp
		})
	}
	tp := s.cache.current.types[resourcev3.EndpointType]
	tp.sets.mu.Lock()
	defer tp.sets.mu.Unlock()
	if len(tp.sets.byKey) != 2 {
		t.Fatalf("%d shared named sets, want 2 (the whole type needs none)", len(tp.sets.byKey))
	}
	for _, set := range tp.sets.byKey {
		set.once.Do(func() {}) // orders the read after the encoding; marks none made
		if set.wire == nil {
			t.Errorf("set %v was not sent from a shared encoding", set.returned)
		}
	}
}

// TestNamedWireIsTheResponse: a shared named response goes out as one
// encoding for every stream, not the whole type's, and those bytes plus
// the nonce read back as exactly the response the stream would have
// marshalled: the named resources that exist.
func TestNamedWireIsTheResponse(t *testing.T) {
	s := NewServer(t.Context(), nil)
	if err := s.Update(t.Context(), pushCatalogue(t, 6, 1)); err != nil {
		t.Fatal(err)
	}
	all := endpointNames(t, s)
	respond := func(names ...string) *discoveryv3.DiscoveryResponse {
		t.Helper()
		r, err := s.cache.current.response(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: names}).GetDiscoveryResponse()
		if err != nil {
			t.Fatal(err)
		}
		r.Nonce = "17"
		return r
	}
	a, b := respond(all[0], all[2], "nobody"), respond(all[2], all[0])
	wa, wb := s.cache.wire(a), s.cache.wire(b)
	if wa == nil || &wa[0] != &wb[0] {
		t.Fatal("two streams naming one set are not sent one encoding")
	}
	if whole := s.cache.wire(respond()); &whole[0] == &wa[0] {
		t.Fatal("a named set is sent as the whole type's encoding")
	}
	data, err := NewCodec().Marshal(&wireResponse{shared: wa, nonce: a.GetNonce()})
	if err != nil {
		t.Fatal(err)
	}
	var got discoveryv3.DiscoveryResponse
	if err := proto.Unmarshal(data.Materialize(), &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, a) || len(got.GetResources()) != 2 {
		t.Fatalf("sent %v, want %v", &got, a)
	}
}

// TestNamedSetsBounded: one client naming more distinct sets than
// maxNamedSets does not grow the shared sets past it, and every request,
// past the bound too, gets exactly what it names.
func TestNamedSetsBounded(t *testing.T) {
	s, addr, all := serveEndpoints(t, 20)
	cl := dialEDS(t, addr)
	asked := 0
	for i := range all {
		for j := i + 1; j < len(all) && asked < maxNamedSets+30; j++ {
			// No version: the cache answers whatever the stream holds.
			cl.ask("", all[j], all[i])
			if _, names := cl.recv(); !slices.Equal(names, []string{all[i], all[j]}) {
				t.Fatalf("request %d: got %v, want %v", asked, names, []string{all[i], all[j]})
			}
			asked++
		}
	}
	tp := s.cache.current.types[resourcev3.EndpointType]
	tp.sets.mu.Lock()
	defer tp.sets.mu.Unlock()
	if len(tp.sets.byKey) != maxNamedSets || len(tp.sets.byList) != maxNamedSets {
		t.Fatalf("%d (%d) shared sets after %d distinct ones, want the bound, %d", len(tp.sets.byKey), len(tp.sets.byList), asked, maxNamedSets)
	}
}

// TestNamedNarrowThenWiden: streams sharing a named set each keep their
// own returned set, which go-control-plane's subscription deletes from
// when a request names fewer resources: a stream that narrows then widens
// its names is sent the re-added resource, and no stream that shares the
// set (before or after) is then sent anything until the next version.
func TestNamedNarrowThenWiden(t *testing.T) {
	s, addr, all := serveEndpoints(t, 6)
	pair := []string{all[0], all[1]}
	a, b := dialEDS(t, addr), dialEDS(t, addr)
	for _, c := range []*edsClient{a, b} {
		c.ask("", pair...)
		if _, names := c.recv(); !slices.Equal(names, pair) {
			t.Fatalf("got %v, want %v", names, pair)
		}
		c.ask(c.version, pair...)
	}
	for _, c := range []*edsClient{a, b} {
		c.ask(c.version, all[0])  // narrows: nothing new to send
		c.ask(c.version, pair...) // widens: the dropped one is sent again
		if _, names := c.recv(); !slices.Equal(names, pair) {
			t.Fatalf("after narrowing and widening got %v, want %v", names, pair)
		}
	}
	// A stream asking for the set after the others narrowed it.
	late := dialEDS(t, addr)
	late.ask("", pair...)
	if _, names := late.recv(); !slices.Equal(names, pair) {
		t.Fatalf("got %v, want %v", names, pair)
	}
	streams := []*edsClient{a, b, late}
	for _, c := range streams {
		c.ask(c.version, pair...) // ACKs: nothing to send
	}
	if err := s.Update(t.Context(), pushCatalogue(t, 6, 2)); err != nil {
		t.Fatal(err)
	}
	for i, c := range streams {
		old := c.version
		if resp, names := c.recv(); resp.GetVersionInfo() == old || !slices.Equal(names, pair) {
			t.Errorf("stream %d: after its ACK got version %s (held %s) of %v: an answer not asked for", i, resp.GetVersionInfo(), old, names)
		}
	}
}

// TestNamedSetsWithinTheirBudget: sets of nearly every resource stop being
// shared once together they carry namedBudget's resources (not 64 copies
// of nearly the whole type), and each request still gets what it names.
func TestNamedSetsWithinTheirBudget(t *testing.T) {
	s, addr, all := serveEndpoints(t, 20)
	cl := dialEDS(t, addr)
	for i := range all {
		// Every resource but one: a set of its own each.
		want := slices.Delete(slices.Clone(all), i, i+1)
		cl.ask("", want...)
		if _, names := cl.recv(); !slices.Equal(names, want) {
			t.Fatalf("request %d: got %v, want %v", i, names, want)
		}
	}
	tp := s.cache.current.types[resourcev3.EndpointType]
	tp.sets.mu.Lock()
	defer tp.sets.mu.Unlock()
	budget := namedBudget(len(all))
	if want := budget / (len(all) - 1); len(tp.sets.byKey) != want || tp.sets.held > budget {
		t.Fatalf("%d shared sets carrying %d resources after %d requests, want %d within %d", len(tp.sets.byKey), tp.sets.held, len(all), want, budget)
	}
}
