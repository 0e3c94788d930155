// Package envoytest is the one check every Envoy configuration MeshGuard
// writes or ships is held to: each HTTP listener asks MeshGuard first (the
// ext_authz filter or MeshGuard's wasm filter), fails closed when MeshGuard
// cannot answer, lets no route switch that off, and hands MeshGuard paths
// and headers normalised as the upstream will read them
// (docs/enforcement.md). The bootstrap files, the Kubernetes example and
// the resources the xDS control plane generates all run it; its own tests
// break each property in turn.
//
// It checks parsed Envoy protos, not text: a property is named by its
// field path, and each Violation says where and why it matters.
package envoytest

import (
	"fmt"
	"slices"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/extauthz"
)

// Property names one thing the check holds a configuration to.
type Property string

// The properties, named by the Envoy field that carries them.
const (
	// Listeners: there is an HTTP listener to check (a check that finds
	// nothing must not pass).
	Listeners Property = "listeners"
	// BootstrapListeners: a bootstrap without static listeners takes them
	// from MeshGuard's xDS (ADS), which holds them to this check.
	BootstrapListeners Property = "bootstrap.dynamic_resources.lds_config"
	// HTTPConnectionManager: every filter chain of a listener ends in an
	// HTTP connection manager; any other (tcp_proxy) passes bytes unasked.
	HTTPConnectionManager Property = "filter_chain.http_connection_manager"
	// NormalizePath, MergeSlashes and EscapedSlashes: MeshGuard decides on
	// the path the upstream serves (the engine refuses the rest).
	NormalizePath  Property = "hcm.normalize_path"
	MergeSlashes   Property = "hcm.merge_slashes"
	EscapedSlashes Property = "hcm.path_with_escaped_slashes_action"
	// UnderscoreHeaders: X_Env is X-Env to CGI-style upstreams; it could
	// stand beside the header decided on or forge an x-meshguard-* one.
	UnderscoreHeaders Property = "hcm.common_http_protocol_options.headers_with_underscores_action"
	// UseRemoteAddress: the client is the connection's peer. Without it
	// Envoy takes the rightmost X-Forwarded-For entry, which the client
	// wrote, for the client's address (source.address) and appends
	// nothing, so MeshGuard would record an address of the client's choice.
	UseRemoteAddress Property = "hcm.use_remote_address"
	// Routes: the routes (inline or RDS, virtual hosts inline) are there
	// to check.
	Routes Property = "hcm.route_specifier"
	// AuthorizerFirst: the first HTTP filter is MeshGuard's, in
	// http_filters and in each upgrade_configs filter list (which an
	// upgrade runs instead); a filter before it could answer or rewrite
	// the request undecided.
	AuthorizerFirst Property = "hcm.http_filters"
	// AuthorizerRuns: MeshGuard's filter is neither disabled nor optional.
	AuthorizerRuns Property = "http_filter.disabled, http_filter.is_optional"
	// FailureModeAllow: MeshGuard unreachable means denied.
	FailureModeAllow Property = "ext_authz.failure_mode_allow"
	// ShadowMode: in shadow mode Envoy records denials and lets them pass.
	ShadowMode Property = "ext_authz.shadow_mode"
	// FilterEnabled: a runtime fraction or metadata match would let some
	// requests skip the check.
	FilterEnabled Property = "ext_authz.filter_enabled"
	// AuthzService: the check goes to a service (MeshGuard's cluster).
	AuthzService Property = "ext_authz.services"
	// StatusOnError: a failed check answers with an error status.
	StatusOnError Property = "ext_authz.status_on_error"
	// WithRequestBody: MeshGuard reads a body only on the routes of a
	// service declaring an agent protocol (docs/mcp.md): there it is sent
	// whole, bounded by the parser's limit, never a prefix; no other route
	// and not the listener's filter sends one.
	WithRequestBody Property = "ext_authz.with_request_body"
	// HeaderMutationRules: rules could stop Envoy applying MeshGuard's
	// header changes, leaving a forged x-meshguard-* header in place.
	HeaderMutationRules Property = "ext_authz.decoder_header_mutation_rules"
	// WasmDefaultConfig: the wasm filter's configuration comes only from
	// MeshGuard; until it has, the listener does not serve.
	WasmDefaultConfig Property = "http_filter.config_discovery.default_config"
	// WasmConfig: the wasm filter's configuration resource is there.
	WasmConfig Property = "wasm.config"
	// WasmFailurePolicy: a failing wasm filter denies.
	WasmFailurePolicy Property = "wasm.config.failure_policy"
	// PerRoute: no route configuration, virtual host, route or weighted
	// cluster turns MeshGuard's filter off or sends its check elsewhere.
	PerRoute Property = "typed_per_filter_config"
)

// A Violation is one property a configuration breaks.
type Violation struct {
	Where    string // the listener, filter chain, filter or route
	Property Property
	Problem  string // what is wrong and why it matters
}

func (v Violation) Error() string {
	return fmt.Sprintf("%s: %s: %s", v.Where, v.Property, v.Problem)
}

// Config is what one Envoy runs: its listeners, and the route
// configurations (RDS) and extension configurations (ECDS) they name.
type Config struct {
	Listeners  []*listenerv3.Listener
	Routes     []*routev3.RouteConfiguration
	Extensions []*corev3.TypedExtensionConfig
}

// Type URLs of the filters that authorize for MeshGuard.
const (
	extAuthzType = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
	wasmType     = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
)

// Check returns every property c breaks; none means it fails closed.
func Check(c Config) []Violation {
	k := &checker{c: c}
	checked := 0
	for _, l := range c.Listeners {
		if k.listener(l) {
			checked++
		}
	}
	if checked == 0 {
		k.add("config", Listeners, "no listener with filter chains: nothing here authorizes a request")
	}
	return k.vs
}

// CheckBootstrap checks a bootstrap's static listeners; one without any
// must take its listeners from MeshGuard's xDS over ADS.
func CheckBootstrap(b *bootstrapv3.Bootstrap) []Violation {
	s := b.GetStaticResources()
	if len(s.GetListeners()) == 0 {
		d := b.GetDynamicResources()
		if d.GetLdsConfig().GetAds() == nil || len(d.GetAdsConfig().GetGrpcServices()) == 0 {
			return []Violation{{Where: "bootstrap", Property: BootstrapListeners,
				Problem: "no static listener and no listeners over ADS from MeshGuard: nothing checks what this Envoy serves"}}
		}
		return nil
	}
	return Check(Config{Listeners: s.GetListeners()})
}

type checker struct {
	c  Config
	vs []Violation
}

func (k *checker) add(where string, p Property, format string, args ...any) {
	k.vs = append(k.vs, Violation{Where: where, Property: p, Problem: fmt.Sprintf(format, args...)})
}

// listener checks every filter chain of l and says whether l serves
// requests. An api_listener with no filter chains is a proxyless gRPC
// client's outbound configuration: it receives nothing to authorize.
func (k *checker) listener(l *listenerv3.Listener) bool {
	chains := l.GetFilterChains()
	if l.GetDefaultFilterChain() != nil {
		chains = append(slices.Clip(chains), l.GetDefaultFilterChain())
	}
	if len(chains) == 0 {
		return false
	}
	for i, fc := range chains {
		where := fmt.Sprintf("listener %q filter chain %d", l.GetName(), i)
		if fc == l.GetDefaultFilterChain() {
			where = fmt.Sprintf("listener %q default filter chain", l.GetName())
		}
		fs := fc.GetFilters()
		var hcm hcmv3.HttpConnectionManager
		if len(fs) == 0 || !unpack(fs[len(fs)-1].GetTypedConfig(), &hcm) {
			k.add(where, HTTPConnectionManager, "does not end in an HTTP connection manager (typed_config): its traffic would pass without MeshGuard's decision")
			continue
		}
		k.hcm(where, &hcm)
	}
	return true
}

func (k *checker) hcm(where string, m *hcmv3.HttpConnectionManager) {
	if !m.GetNormalizePath().GetValue() {
		k.add(where, NormalizePath, "is not true: /a/../admin would be decided as written and served as /admin")
	}
	if !m.GetMergeSlashes() {
		k.add(where, MergeSlashes, "is not true: //admin would be decided as written and served as /admin")
	}
	switch a := m.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_REJECT_REQUEST, hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
	default:
		k.add(where, EscapedSlashes, "is %v, want REJECT_REQUEST or UNESCAPE_AND_REDIRECT: %%2F would be decided as one segment and served as two", a)
	}
	if !m.GetUseRemoteAddress().GetValue() {
		k.add(where, UseRemoteAddress, "is not true: Envoy takes the client's own X-Forwarded-For for its address, and MeshGuard records whatever the client wrote there")
	}
	if a := m.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); a != corev3.HttpProtocolOptions_REJECT_REQUEST {
		k.add(where, UnderscoreHeaders, "is %v, want REJECT_REQUEST: X_MeshGuard_Agent_Id reaches CGI-style upstreams as X-MeshGuard-Agent-Id", a)
	}

	authorizers := k.filters(where, m.GetHttpFilters())
	// An upgrade type with filters of its own runs those instead of
	// http_filters: a WebSocket upgrade through [router] alone would
	// reach the upstream unasked, and every message after it.
	for _, u := range m.GetUpgradeConfigs() {
		if len(u.GetFilters()) > 0 {
			authorizers = append(authorizers, k.filters(fmt.Sprintf("%s upgrade %q", where, u.GetUpgradeType()), u.GetFilters())...)
		}
	}

	switch {
	case m.GetRouteConfig() != nil:
		k.routes(where, m.GetRouteConfig(), authorizers)
	case m.GetRds() != nil:
		name := m.GetRds().GetRouteConfigName()
		i := slices.IndexFunc(k.c.Routes, func(rc *routev3.RouteConfiguration) bool { return rc.GetName() == name })
		if i < 0 {
			k.add(where, Routes, "the RDS route configuration %q is not among those checked", name)
			return
		}
		k.routes(where, k.c.Routes[i], authorizers)
	default:
		k.add(where, Routes, "routes neither inline nor by RDS: they cannot be checked")
	}
}

// filters checks one HTTP filter chain (http_filters, or an upgrade
// type's) and returns the names of MeshGuard's filters in it.
func (k *checker) filters(where string, filters []*hcmv3.HttpFilter) []string {
	var authorizers []string
	firstAuthorizes := false
	for i, f := range filters {
		fw := fmt.Sprintf("%s http filter %q", where, f.GetName())
		switch {
		case f.GetTypedConfig().GetTypeUrl() == extAuthzType:
			k.extAuthz(fw, f)
		case isWasm(f):
			k.wasm(fw, f)
		default:
			continue
		}
		authorizers = append(authorizers, f.GetName())
		firstAuthorizes = firstAuthorizes || i == 0
	}
	switch {
	case len(filters) == 0:
		k.add(where, AuthorizerFirst, "no HTTP filters: nothing asks MeshGuard")
	case !firstAuthorizes:
		k.add(where, AuthorizerFirst, "the first HTTP filter is %q, not ext_authz or MeshGuard's wasm filter (found: %q): it acts on the request before MeshGuard decides", filters[0].GetName(), authorizers)
	}
	return authorizers
}

func isWasm(f *hcmv3.HttpFilter) bool {
	return f.GetTypedConfig().GetTypeUrl() == wasmType || slices.Contains(f.GetConfigDiscovery().GetTypeUrls(), wasmType)
}

func (k *checker) runs(where string, f *hcmv3.HttpFilter) {
	if f.GetDisabled() || f.GetIsOptional() {
		k.add(where, AuthorizerRuns, "disabled %v, is_optional %v: requests would pass unasked", f.GetDisabled(), f.GetIsOptional())
	}
}

func (k *checker) extAuthz(where string, f *hcmv3.HttpFilter) {
	k.runs(where, f)
	var a extauthzv3.ExtAuthz
	if !unpack(f.GetTypedConfig(), &a) {
		k.add(where, AuthzService, "the ExtAuthz config does not decode")
		return
	}
	if a.GetFailureModeAllow() {
		k.add(where, FailureModeAllow, "is true: MeshGuard unreachable or failing would let every request through")
	}
	if a.GetShadowMode() {
		k.add(where, ShadowMode, "is true: denials are recorded and the requests pass")
	}
	if a.GetFilterEnabled() != nil || a.GetFilterEnabledMetadata() != nil {
		k.add(where, FilterEnabled, "is set: the requests it does not select pass unasked")
	}
	if a.GetGrpcService() == nil && a.GetHttpService() == nil {
		k.add(where, AuthzService, "neither grpc_service nor http_service: the check goes nowhere")
	}
	if s := a.GetStatusOnError(); s != nil && s.GetCode() < 400 {
		k.add(where, StatusOnError, "is %v: a failed check must answer with an error status", s.GetCode())
	}
	if a.GetWithRequestBody() != nil {
		k.add(where, WithRequestBody, "is set on the filter: every route's body would be sent to MeshGuard, which reads one only on the routes of an agent protocol")
	}
	if a.GetDecoderHeaderMutationRules() != nil {
		k.add(where, HeaderMutationRules, "is set: it can stop Envoy removing the forged x-meshguard-* headers MeshGuard names")
	}
}

func (k *checker) wasm(where string, f *hcmv3.HttpFilter) {
	k.runs(where, f)
	var w wasmfilterv3.Wasm
	if cd := f.GetConfigDiscovery(); cd != nil {
		if cd.GetDefaultConfig() != nil || cd.GetApplyDefaultConfigWithoutWarming() {
			k.add(where, WasmDefaultConfig, "is set: the listener would serve with a configuration that is not MeshGuard's")
		}
		i := slices.IndexFunc(k.c.Extensions, func(e *corev3.TypedExtensionConfig) bool { return e.GetName() == f.GetName() })
		if i < 0 || !unpack(k.c.Extensions[i].GetTypedConfig(), &w) {
			k.add(where, WasmConfig, "no Wasm extension configuration named %q among those checked", f.GetName())
			return
		}
	} else if !unpack(f.GetTypedConfig(), &w) {
		k.add(where, WasmConfig, "the Wasm config does not decode")
		return
	}
	// An explicit policy overrides the deprecated fail_open.
	if p := w.GetConfig().GetFailurePolicy(); p != wasmv3.FailurePolicy_FAIL_CLOSED {
		k.add(where, WasmFailurePolicy, "is %v, want FAIL_CLOSED: a crashed filter would let requests through", p)
	}
}

// routes checks every per-filter config that names one of MeshGuard's
// filters, at each level Envoy reads one.
func (k *checker) routes(where string, rc *routev3.RouteConfiguration, authorizers []string) {
	where = fmt.Sprintf("%s route configuration %q", where, rc.GetName())
	if rc.GetVhds() != nil {
		k.add(where, Routes, "takes virtual hosts over VHDS: their per-filter configs cannot be checked")
	}
	k.perFilter(where, rc.GetTypedPerFilterConfig(), authorizers)
	for _, vh := range rc.GetVirtualHosts() {
		vw := fmt.Sprintf("%s virtual host %q", where, vh.GetName())
		k.perFilter(vw, vh.GetTypedPerFilterConfig(), authorizers)
		for i, r := range vh.GetRoutes() {
			rw := fmt.Sprintf("%s route %d %q", vw, i, r.GetName())
			k.perFilter(rw, r.GetTypedPerFilterConfig(), authorizers)
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				k.perFilter(fmt.Sprintf("%s weighted cluster %q", rw, wc.GetName()), wc.GetTypedPerFilterConfig(), authorizers)
			}
		}
	}
}

func (k *checker) perFilter(where string, m map[string]*anypb.Any, authorizers []string) {
	for _, name := range authorizers {
		if a, ok := m[name]; ok {
			k.perRoute(fmt.Sprintf("%s for %q", where, name), a)
		}
	}
}

func (k *checker) perRoute(where string, a *anypb.Any) {
	var fc routev3.FilterConfig
	var per extauthzv3.ExtAuthzPerRoute
	switch {
	case unpack(a, &fc):
		if fc.GetDisabled() {
			k.add(where, PerRoute, "disables MeshGuard's filter: the route's requests pass unasked")
		}
		if fc.GetConfig() != nil {
			k.perRoute(where, fc.GetConfig())
		}
	case unpack(a, &per):
		if per.GetDisabled() {
			k.add(where, PerRoute, "disables ext_authz: the route's requests pass unasked")
		}
		s := per.GetCheckSettings()
		if s.GetGrpcService() != nil || s.GetHttpService() != nil {
			k.add(where, PerRoute, "overrides the ext_authz service: the route's requests would be checked by another server")
		}
		if s.GetDisableRequestBodyBuffering() {
			k.add(where, WithRequestBody, "disable_request_body_buffering is set: the body would not reach MeshGuard, and an agent protocol's calls would be decided on headers alone")
		}
		if s.GetContextExtensions()[extauthz.ContextExtensionProtocol] != "" && s.GetWithRequestBody() == nil {
			k.add(where, WithRequestBody, "is not set on a route declaring an agent protocol: its calls would be decided on the 2026-07-28 headers alone, not on the body the upstream receives")
		}
		if b := s.GetWithRequestBody(); b != nil {
			switch {
			case s.GetContextExtensions()[extauthz.ContextExtensionProtocol] == "":
				k.add(where, WithRequestBody, "is set on a route declaring no agent protocol: MeshGuard reads no other body")
			case b.GetAllowPartialMessage():
				k.add(where, WithRequestBody, "allow_partial_message is true: a prefix of the body would be decided on")
			case b.GetMaxRequestBytes() == 0 || b.GetMaxRequestBytes() > agentproto.MaxBody:
				k.add(where, WithRequestBody, "max_request_bytes is %d: expected 1 to %d, the parser's bound", b.GetMaxRequestBytes(), agentproto.MaxBody)
			}
		}
	default:
		k.add(where, PerRoute, "a per-route config of type %s that cannot be checked", a.GetTypeUrl())
	}
}

// unpack decodes a into m if a holds an m.
func unpack(a *anypb.Any, m proto.Message) bool {
	return a != nil && a.MessageIs(m) && a.UnmarshalTo(m) == nil
}
