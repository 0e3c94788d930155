// Package xds turns MeshGuard's service catalogue into the Envoy
// resources its xDS control plane serves (docs/xds.md): an ingress listener
// whose HTTP connection manager runs the ext_authz filter (a cluster back to
// MeshGuard, failing closed) and the router; one virtual host per service
// with its routes, each carrying its action to ext_authz as a per-route
// context extension; one EDS cluster per service; and, for proxyless gRPC
// clients, an api_listener Listener named after each service host.
//
// Every resource is checked with the protos' ValidateAll before it is
// returned: a generation bug must never reach an Envoy.
package xds

import (
	"fmt"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/extauthz"
	"github.com/meshguard/meshguard/trust"
)

// Names of the resources that do not come from a service.
const (
	IngressListener = "meshguard_ingress"
	IngressRoutes   = "meshguard_routes"
	AuthzCluster    = "meshguard_authz"
)

// Options says where things are, as the Envoys see them.
type Options struct {
	// ListenerPort is the ingress listener's port (LISTENER_PORT).
	ListenerPort int
	// AuthzHost and AuthzPort are MeshGuard's gRPC address as Envoys reach it.
	AuthzHost string
	AuthzPort int
	// AuthzTimeout bounds one ext_authz call (default 250 ms); a timeout
	// is a denial (failure_mode_allow is false).
	AuthzTimeout time.Duration
	// Wasm, if set, runs MeshGuard's wasm filter in the ingress listener
	// instead of ext_authz.
	Wasm *Wasm
}

// Resources are one generation of everything the control plane serves.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Extensions are filter configurations served on their own (ECDS):
	// the wasm filter's.
	Extensions []*corev3.TypedExtensionConfig
}

// Build generates the resources for c.
func Build(c *catalog.Catalogue, o Options) (*Resources, error) {
	if o.ListenerPort < 1 || o.ListenerPort > 65535 || o.AuthzPort < 1 || o.AuthzPort > 65535 || o.AuthzHost == "" {
		return nil, fmt.Errorf("xds: options: listener port %d, authz %s:%d: expected ports 1 to 65535 and a host", o.ListenerPort, o.AuthzHost, o.AuthzPort)
	}
	if o.AuthzTimeout <= 0 {
		o.AuthzTimeout = 250 * time.Millisecond
	}
	r := &Resources{}
	r.Listeners = append(r.Listeners, ingressListener(o))
	authz := r.meshguardCluster(AuthzCluster, net.JoinHostPort(o.AuthzHost, strconv.Itoa(o.AuthzPort)))
	authz.TypedExtensionProtocolOptions = http2Only()
	if o.Wasm != nil {
		if err := o.Wasm.check(); err != nil {
			return nil, err
		}
		r.meshguardCluster(HTTPCluster, httpEndpoint(o.Wasm))
		r.Extensions = append(r.Extensions, wasmExtension(o.Wasm))
	}
	routes := &routev3.RouteConfiguration{Name: IngressRoutes}
	for i := range c.Services {
		s := &c.Services[i]
		routes.VirtualHosts = append(routes.VirtualHosts, virtualHost(s, o.Wasm == nil))
		if allIPs(s.Endpoints) {
			r.Clusters = append(r.Clusters, edsCluster(s.Name))
			r.Endpoints = append(r.Endpoints, loadAssignment(s.Name, s.Endpoints))
		} else {
			// EDS endpoints must be IP addresses; names are resolved by
			// Envoy itself, so the endpoints go inline.
			r.Clusters = append(r.Clusters, dnsCluster(s.Name, s.Endpoints))
		}
		grpcListeners, grpcRoutes := proxyless(s)
		r.Listeners = append(r.Listeners, grpcListeners...)
		r.Routes = append(r.Routes, grpcRoutes...)
	}
	r.Routes = append([]*routev3.RouteConfiguration{routes}, r.Routes...)
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// validate runs ValidateAll on every resource.
func (r *Resources) validate() error {
	type validator interface{ ValidateAll() error }
	check := func(kind, name string, v validator) error {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("xds: generated %s %q is invalid: %w", kind, name, err)
		}
		return nil
	}
	for _, l := range r.Listeners {
		if err := check("listener", l.GetName(), l); err != nil {
			return err
		}
	}
	for _, rc := range r.Routes {
		if err := check("route configuration", rc.GetName(), rc); err != nil {
			return err
		}
	}
	for _, c := range r.Clusters {
		if err := check("cluster", c.GetName(), c); err != nil {
			return err
		}
	}
	for _, e := range r.Endpoints {
		if err := check("cluster load assignment", e.GetClusterName(), e); err != nil {
			return err
		}
	}
	for _, e := range r.Extensions {
		if err := check("extension config", e.GetName(), e); err != nil {
			return err
		}
	}
	return nil
}

// mustAny packs m deterministically: anypb.New is not (map entries, such
// as a route's context extensions, come out in random order), and the
// server tells a change from a reload that changed nothing by the
// resources' bytes — every Any in every resource must be packed here.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		// Only messages of this package are packed; a failure is a bug.
		panic(fmt.Sprintf("xds: packing %T: %v", m, err))
	}
	return a
}

// ads is the config source of resources delivered on the same ADS stream.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}
}

// ingressListener is the listener every request to a service enters by:
// ext_authz (or the wasm filter) first, failing closed, then the router.
func ingressListener(o Options) *listenerv3.Listener {
	authz := &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: AuthzCluster}},
			Timeout:         durationpb.New(o.AuthzTimeout),
		}},
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    false,
		// The request body is not sent: decisions need the headers only.
		IncludePeerCertificate: true,
	}
	manager := &hcmv3.HttpConnectionManager{
		StatPrefix:     "meshguard_ingress",
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: IngressRoutes}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: "envoy.filters.http.ext_authz", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(authz)}},
			routerFilter(),
		},
		// Paths are normalised before routing and authorization, as the
		// engine expects (it refuses dot segments rather than guess).
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
		// The client is the connection's peer, appended to
		// X-Forwarded-For: otherwise Envoy takes the rightmost entry the
		// client wrote as its address (source.address, which MeshGuard
		// records).
		UseRemoteAddress: wrapperspb.Bool(true),
		// X_Env is X-Env to CGI-style upstreams (WSGI, Rack, PHP): a
		// header in that spelling could stand beside the one decided on,
		// or forge an x-meshguard-* identity header ext_authz removes by
		// its dashed name.
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{
			HeadersWithUnderscoresAction: corev3.HttpProtocolOptions_REJECT_REQUEST,
		},
	}
	if o.Wasm != nil {
		// The filter decides, asking MeshGuard only when it must; ext_authz
		// as well would decide every request twice.
		manager.HttpFilters = []*hcmv3.HttpFilter{wasmHTTPFilter(), routerFilter()}
	}
	return &listenerv3.Listener{
		Name: IngressListener,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(o.ListenerPort)},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(manager)},
		}}}},
	}
}

// meshguardCluster adds a cluster for one of MeshGuard's own ports: EDS
// when the address is an IP, STRICT_DNS when it is a name (EDS takes IPs
// only; XDS_AUTHZ_ADDRESS is typically a Kubernetes Service name).
func (r *Resources) meshguardCluster(name, addr string) *clusterv3.Cluster {
	var c *clusterv3.Cluster
	if allIPs([]string{addr}) {
		c = edsCluster(name)
		r.Endpoints = append(r.Endpoints, loadAssignment(name, []string{addr}))
	} else {
		c = dnsCluster(name, []string{addr})
	}
	r.Clusters = append(r.Clusters, c)
	return c
}

// http2Only makes a cluster speak HTTP/2 (gRPC).
func http2Only() map[string]*anypb.Any {
	return map[string]*anypb.Any{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		}),
	}
}

// edsCluster is a cluster whose endpoints come over ADS.
func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
		ConnectTimeout:       durationpb.New(2 * time.Second),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
}

// dnsCluster is a cluster whose endpoints are host names Envoy resolves.
func dnsCluster(name string, endpoints []string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		LoadAssignment:       loadAssignment(name, endpoints),
		ConnectTimeout:       durationpb.New(2 * time.Second),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
}

func allIPs(endpoints []string) bool {
	for _, e := range endpoints {
		host, _, _ := net.SplitHostPort(e)
		if net.ParseIP(host) == nil {
			return false
		}
	}
	return true
}

// loadAssignment lists endpoints ("host:port", validated by the catalogue)
// in one locality; gRPC's xDS client needs its weight.
func loadAssignment(cluster string, endpoints []string) *endpointv3.ClusterLoadAssignment {
	eps := make([]*endpointv3.LbEndpoint, 0, len(endpoints))
	for _, e := range endpoints {
		host, port, _ := net.SplitHostPort(e)
		p, _ := strconv.Atoi(port)
		eps = append(eps, &endpointv3.LbEndpoint{LoadBalancingWeight: wrapperspb.UInt32(1), HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
			}}},
		}}})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality: &corev3.Locality{Region: "meshguard"}, LbEndpoints: eps, LoadBalancingWeight: wrapperspb.UInt32(1),
		}},
	}
}

// domains are a service's hosts, bare and with its port, as Host headers
// carry them.
func domains(s *catalog.Service) []string {
	out := make([]string, 0, 2*len(s.Hosts))
	for _, h := range s.Hosts {
		out = append(out, h, net.JoinHostPort(h, strconv.Itoa(s.Port)))
	}
	return out
}

// virtualHost routes a service's requests to its cluster; each catalogue
// route passes its action to ext_authz; the rest match "/" with no action,
// which the engine derives from method and path (docs/enforcement.md). Without authz
// (the wasm filter decides, from the catalogue in its configuration) the
// routes carry no ext_authz context.
func virtualHost(s *catalog.Service, authz bool) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: s.Name, Domains: domains(s)}
	toCluster := &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: s.Name}}}
	for _, cr := range s.OrderedRoutes() {
		m := &routev3.RouteMatch{}
		if p, prefix := cr.Prefix(); prefix {
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: p}
		} else {
			m.PathSpecifier = &routev3.RouteMatch_Path{Path: cr.Path}
		}
		if cr.Method != "" {
			m.Headers = []*routev3.HeaderMatcher{{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: cr.Method}},
			}}}
		}
		r := &routev3.Route{Name: s.Name + ":" + cr.Method + ":" + cr.Path, Match: m, Action: toCluster}
		if authz {
			r.TypedPerFilterConfig = authzContext(s, cr.Action)
		}
		vh.Routes = append(vh.Routes, r)
	}
	def := &routev3.Route{Name: s.Name + ":default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: toCluster}
	if authz {
		def.TypedPerFilterConfig = authzContext(s, "")
	}
	vh.Routes = append(vh.Routes, def)
	return vh
}

// authzContext is a route's ext_authz context: its action, if any, the
// service's minimum tier, if above untrusted, and the protocol it declares
// with its name. Nil when there is none of them.
//
// Only a service declaring a protocol has its routes send the request body
// (docs/mcp.md): the whole of it, up to the parser's bound, never a prefix
// (a larger body is refused by Envoy with 413), as bytes so that what is
// decided is exactly what the upstream reads. Every other route keeps the
// listener's check without a body.
func authzContext(s *catalog.Service, action string) map[string]*anypb.Any {
	ext := map[string]string{}
	if action != "" {
		ext[extauthz.ContextExtensionAction] = action
	}
	if s.MinTier > trust.Untrusted {
		ext[extauthz.ContextExtensionMinTier] = s.MinTier.String()
	}
	var body *extauthzv3.BufferSettings
	if s.Protocol != "" {
		ext[extauthz.ContextExtensionProtocol] = string(s.Protocol)
		ext[extauthz.ContextExtensionService] = s.Name
		body = &extauthzv3.BufferSettings{MaxRequestBytes: agentproto.MaxBody, AllowPartialMessage: false, PackAsBytes: true}
	}
	if len(ext) == 0 {
		return nil
	}
	perRoute := &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{
		ContextExtensions: ext, WithRequestBody: body,
	}}}
	return map[string]*anypb.Any{"envoy.filters.http.ext_authz": mustAny(perRoute)}
}

// proxyless is what gRPC's xDS client asks for when dialled as
// xds:///host: a Listener named after the host whose api_listener holds
// an HTTP connection manager, and its route configuration. gRPC's route
// matching cannot see :method, so these routes match on path only.
func proxyless(s *catalog.Service) ([]*listenerv3.Listener, []*routev3.RouteConfiguration) {
	var ls []*listenerv3.Listener
	var rcs []*routev3.RouteConfiguration
	for _, h := range s.Hosts {
		name := "meshguard_grpc_" + h
		manager := &hcmv3.HttpConnectionManager{
			StatPrefix:     name,
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: name}},
			HttpFilters:    []*hcmv3.HttpFilter{routerFilter()},
		}
		ls = append(ls, &listenerv3.Listener{Name: h, ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(manager)}})
		rcs = append(rcs, &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
			Name: s.Name, Domains: []string{h, net.JoinHostPort(h, strconv.Itoa(s.Port))},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: s.Name}}},
			}},
		}}})
	}
	return ls, rcs
}
