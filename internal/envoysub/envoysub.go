// Package envoysub subscribes to xDS as an Envoy does, for the load
// harness (bench/memory) and the xds package's benchmarks: clusters and
// listeners whole, endpoints and routes by the names those give.
package envoysub

import (
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Wildcard are the types a stream asks for whole when it opens, as an
// Envoy with its listeners, routes, clusters and endpoints on ADS does; it
// then asks for endpoints and routes by name (Subscriber).
var Wildcard = []string{resourcev3.ClusterType, resourcev3.ListenerType}

// Subscriber keeps one stream's subscriptions as Envoy keeps them:
// clusters and listeners wildcard; endpoints by the names of its EDS
// clusters and routes by the route configurations its listeners' HTTP
// connection managers name. Every request for a named type carries the
// whole set it wants (state of the world: a request without names would
// unsubscribe it), and each type's ACK its last version and nonce.
type Subscriber struct {
	names   map[string][]string // by type: what it last asked for
	version map[string]string   // by type: the last version accepted
	nonce   map[string]string   // by type: the last response's nonce
}

// New is a subscriber that has asked for nothing by name yet.
func New() *Subscriber {
	return &Subscriber{names: map[string][]string{}, version: map[string]string{}, nonce: map[string]string{}}
}

// Answer ACKs resp and, when the clusters or listeners it holds now name
// other endpoints or routes, asks for those.
func (e *Subscriber) Answer(resp *discoveryv3.DiscoveryResponse, send func(*discoveryv3.DiscoveryRequest) error) error {
	t := resp.GetTypeUrl()
	e.version[t], e.nonce[t] = resp.GetVersionInfo(), resp.GetNonce()
	if err := send(e.request(t)); err != nil {
		return err
	}
	var dependent string
	var names []string
	var err error
	switch t {
	case resourcev3.ClusterType:
		dependent = resourcev3.EndpointType
		names, err = edsNames(resp)
	case resourcev3.ListenerType:
		dependent = resourcev3.RouteType
		names, err = routeNames(resp)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	if _, asked := e.names[dependent]; asked && slices.Equal(names, e.names[dependent]) {
		return nil
	}
	e.names[dependent] = names
	return send(e.request(dependent))
}

func (e *Subscriber) request(typeURL string) *discoveryv3.DiscoveryRequest {
	return &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: e.names[typeURL], VersionInfo: e.version[typeURL], ResponseNonce: e.nonce[typeURL]}
}

// edsNames are the names the EDS clusters in resp ask endpoints by, sorted.
func edsNames(resp *discoveryv3.DiscoveryResponse) ([]string, error) {
	var names []string
	for _, a := range resp.GetResources() {
		var c clusterv3.Cluster
		if err := a.UnmarshalTo(&c); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// routeNames are the route configurations the HTTP connection managers in
// resp's listeners' filter chains ask for over RDS, sorted.
func routeNames(resp *discoveryv3.DiscoveryResponse) ([]string, error) {
	var names []string
	for _, a := range resp.GetResources() {
		var l listenerv3.Listener
		if err := a.UnmarshalTo(&l); err != nil {
			return nil, fmt.Errorf("listener: %w", err)
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().MessageIs(&hcm) {
					if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
						return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
					}
					if n := hcm.GetRds().GetRouteConfigName(); n != "" {
						names = append(names, n)
					}
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
