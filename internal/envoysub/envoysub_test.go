package envoysub

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func anys(t *testing.T, ms ...proto.Message) []*anypb.Any {
	t.Helper()
	var out []*anypb.Any
	for _, m := range ms {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func eds(name, serviceName string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: serviceName}}
}

func rdsListener(t *testing.T, name string, routes ...string) *listenerv3.Listener {
	l := &listenerv3.Listener{Name: name}
	for _, r := range routes {
		hcm := &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: r}}}
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{
			Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anys(t, hcm)[0]},
		}}})
	}
	return l
}

// TestEnvoySubscriberAsksAsEnvoyDoes: endpoints are asked for by the EDS
// clusters' names (not a DNS cluster's), routes by the names the
// listeners' connection managers give; every request for a named type
// carries its whole set, ACKs carry the version and nonce, and an
// unchanged set is not asked for again.
func TestEnvoySubscriberAsksAsEnvoyDoes(t *testing.T) {
	e := New()
	var sent []*discoveryv3.DiscoveryRequest
	send := func(r *discoveryv3.DiscoveryRequest) error { sent = append(sent, r); return nil }
	clusters := &discoveryv3.DiscoveryResponse{TypeUrl: resourcev3.ClusterType, VersionInfo: "1", Nonce: "a", Resources: anys(t,
		eds("b", ""), eds("a", "a-svc"),
		&clusterv3.Cluster{Name: "dns", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}})}
	if err := e.Answer(clusters, send); err != nil {
		t.Fatal(err)
	}
	listeners := &discoveryv3.DiscoveryResponse{TypeUrl: resourcev3.ListenerType, VersionInfo: "1", Nonce: "b", Resources: anys(t,
		rdsListener(t, "ingress", "routes", "routes"), rdsListener(t, "other", "more"))}
	if err := e.Answer(listeners, send); err != nil {
		t.Fatal(err)
	}
	endpoints := &discoveryv3.DiscoveryResponse{TypeUrl: resourcev3.EndpointType, VersionInfo: "1", Nonce: "c"}
	if err := e.Answer(endpoints, send); err != nil {
		t.Fatal(err)
	}
	clusters.VersionInfo, clusters.Nonce = "2", "d"
	if err := e.Answer(clusters, send); err != nil {
		t.Fatal(err)
	}
	type req struct {
		typeURL, version, nonce string
		names                   []string
	}
	want := []req{
		{resourcev3.ClusterType, "1", "a", nil},
		{resourcev3.EndpointType, "", "", []string{"a-svc", "b"}},
		{resourcev3.ListenerType, "1", "b", nil},
		{resourcev3.RouteType, "", "", []string{"more", "routes"}},
		{resourcev3.EndpointType, "1", "c", []string{"a-svc", "b"}},
		{resourcev3.ClusterType, "2", "d", nil},
	}
	if len(sent) != len(want) {
		t.Fatalf("sent %d requests, want %d: %v", len(sent), len(want), sent)
	}
	for i, w := range want {
		got := req{sent[i].GetTypeUrl(), sent[i].GetVersionInfo(), sent[i].GetResponseNonce(), sent[i].GetResourceNames()}
		if got.typeURL != w.typeURL || got.version != w.version || got.nonce != w.nonce || !slices.Equal(got.names, w.names) {
			t.Errorf("request %d = %+v, want %+v", i, got, w)
		}
	}
}
