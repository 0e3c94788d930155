package xds

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// TestStreamsShareOneEncoding: streams waiting when a version is set are
// all answered with the same encoded resources (each resource encoded
// once, not once per stream), each in its own DiscoveryResponse (the
// server writes its stream's nonce there) with its own returned set; a
// named request gets only what it names.
func TestStreamsShareOneEncoding(t *testing.T) {
	s := NewServer(t.Context(), nil)
	if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.1:80")); err != nil {
		t.Fatal(err)
	}
	ch := func() chan cachev3.Response { return make(chan cachev3.Response, 1) }
	// watch opens a watch that holds version 1, as a stream does after
	// its first response.
	watch := func(names ...string) chan cachev3.Response {
		sub := streamv3.NewSotwSubscription(names, true)
		first := ch()
		if _, err := s.cache.CreateWatch(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResourceNames: names}, &sub, first); err != nil {
			t.Fatal(err)
		}
		sub.SetReturnedResources((<-first).GetReturnedResources())
		out := ch()
		req := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: "1", ResourceNames: names}
		if _, err := s.cache.CreateWatch(req, &sub, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b, named := watch(), watch(), watch("nobody")
	if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.2:80")); err != nil {
		t.Fatal(err)
	}
	got := func(c chan cachev3.Response) (*discoveryv3.DiscoveryResponse, map[string]string) {
		t.Helper()
		select {
		case r := <-c:
			out, err := r.GetDiscoveryResponse()
			if err != nil {
				t.Fatal(err)
			}
			return out, r.GetReturnedResources()
		default:
			t.Fatal("a waiting watch got no response to a new version")
		}
		return nil, nil
	}
	ra, reta := got(a)
	rb, retb := got(b)
	rn, retn := got(named)
	if ra.GetVersionInfo() != "2" || len(ra.GetResources()) == 0 || len(ra.GetResources()) != len(rb.GetResources()) {
		t.Fatalf("responses: version %q, %d and %d resources", ra.GetVersionInfo(), len(ra.GetResources()), len(rb.GetResources()))
	}
	if ra == rb {
		t.Fatal("two streams got one DiscoveryResponse: their nonces would overwrite each other")
	}
	for i := range ra.GetResources() {
		if ra.GetResources()[i] != rb.GetResources()[i] {
			t.Fatalf("resource %d was encoded for each stream", i)
		}
	}
	for name := range reta {
		delete(reta, name)
	}
	if len(retb) == 0 {
		t.Fatal("emptying one stream's returned set emptied another's")
	}
	if len(rn.GetResources()) != 0 || len(retn) != 0 {
		t.Fatalf("a request naming an unknown cluster got %d resources, %v", len(rn.GetResources()), retn)
	}
}

// TestUnservedTypeWaits: a request for a type MeshGuard serves none of
// (secrets) is not answered, as the snapshot cache did not answer it: an
// answer would tell an Envoy its secrets are none, at a version.
func TestUnservedTypeWaits(t *testing.T) {
	s := NewServer(t.Context(), nil)
	if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.1:80")); err != nil {
		t.Fatal(err)
	}
	out := make(chan cachev3.Response, 1)
	sub := streamv3.NewSotwSubscription(nil, true)
	cancel, err := s.cache.CreateWatch(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.SecretType}, &sub, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	if got := s.cache.sotwWatches(); got != 1 {
		t.Fatalf("%d watches waiting, want the secrets request's", got)
	}
	// A new version does not answer it either: Update returns after
	// answering every watch it answers.
	if err := s.Update(t.Context(), echoCatalogue(t, "10.0.0.2:80")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-out:
		t.Fatalf("a secrets request was answered: %v", r.GetReturnedResources())
	default:
	}
}
