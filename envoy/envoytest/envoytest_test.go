package envoytest_test

import (
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	// Filters the broken configurations below put in, registered for decoding.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshguard/meshguard/envoy"
	"github.com/meshguard/meshguard/envoy/envoytest"
)

// base is a static bootstrap as MeshGuard ships them: each case below
// changes one line of it.
const base = `static_resources:
  listeners:
    - name: ingress
      address: {socket_address: {address: 0.0.0.0, port_value: 10000}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ingress
                normalize_path: true
                merge_slashes: true
                path_with_escaped_slashes_action: REJECT_REQUEST
                use_remote_address: true
                common_http_protocol_options: {headers_with_underscores_action: REJECT_REQUEST}
                route_config:
                  name: local
                  virtual_hosts:
                    - name: app
                      domains: ["*"]
                      routes:
                        - match: {prefix: /send/}
                          route: {cluster: app}
                          typed_per_filter_config: {envoy.filters.http.ext_authz: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, check_settings: {context_extensions: {meshguard.action: "write:email"}}}}
                        - match: {prefix: /}
                          route: {cluster: app}
                http_filters:
                  - name: envoy.filters.http.ext_authz
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz, transport_api_version: V3, failure_mode_allow: false, grpc_service: {envoy_grpc: {cluster_name: meshguard}, timeout: 0.25s}}
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
    - name: app
      type: STATIC
      load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}}]}]}
`

const (
	authzFilter = "                  - name: envoy.filters.http.ext_authz\n"
	authzConfig = "transport_api_version: V3, failure_mode_allow: false"
	sendRoute   = "check_settings: {context_extensions: {meshguard.action: \"write:email\"}}"
	cors        = "                  - name: envoy.filters.http.cors\n                    typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}\n"
	defaultPath = "                        - match: {prefix: /}\n"
	underscore  = "                common_http_protocol_options: {headers_with_underscores_action: REJECT_REQUEST}\n"
	router      = `{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}`
	routeConfig = "                  name: local\n"
)

// TestBootstrapViolations: each property, broken alone in an otherwise
// fail-closed bootstrap, is reported by name, and only it.
func TestBootstrapViolations(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		want     envoytest.Property // "" when the change is allowed
	}{
		{"as shipped", "", "", ""},
		{"failure_mode_allow true", "failure_mode_allow: false", "failure_mode_allow: true", envoytest.FailureModeAllow},
		{"shadow_mode", authzConfig, authzConfig + ", shadow_mode: true", envoytest.ShadowMode},
		{"filter_enabled at 50%", authzConfig, authzConfig + ", filter_enabled: {default_value: {numerator: 50}}", envoytest.FilterEnabled},
		{"filter_enabled_metadata", authzConfig, authzConfig + ", filter_enabled_metadata: {filter: f, path: [{key: k}], value: {bool_match: true}}", envoytest.FilterEnabled},
		{"status_on_error 200", authzConfig, authzConfig + ", status_on_error: {code: 200}", envoytest.StatusOnError},
		{"status_on_error 503", authzConfig, authzConfig + ", status_on_error: {code: 503}", ""},
		{"with_request_body", authzConfig, authzConfig + ", with_request_body: {max_request_bytes: 1024}", envoytest.WithRequestBody},
		{"decoder_header_mutation_rules", authzConfig, authzConfig + ", decoder_header_mutation_rules: {disallow_all: true}", envoytest.HeaderMutationRules},
		{"no service", ", grpc_service: {envoy_grpc: {cluster_name: meshguard}, timeout: 0.25s}", "", envoytest.AuthzService},
		{"ext_authz disabled", authzFilter, authzFilter + "                    disabled: true\n", envoytest.AuthorizerRuns},
		{"ext_authz optional", authzFilter, authzFilter + "                    is_optional: true\n", envoytest.AuthorizerRuns},
		{"a filter before ext_authz", authzFilter, cors + authzFilter, envoytest.AuthorizerFirst},
		{"no ext_authz", authzFilter + "                    typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz, " + authzConfig + ", grpc_service: {envoy_grpc: {cluster_name: meshguard}, timeout: 0.25s}}\n", "", envoytest.AuthorizerFirst},
		{"normalize_path false", "normalize_path: true", "normalize_path: false", envoytest.NormalizePath},
		{"normalize_path unset", "                normalize_path: true\n", "", envoytest.NormalizePath},
		{"merge_slashes false", "merge_slashes: true", "merge_slashes: false", envoytest.MergeSlashes},
		{"escaped slashes kept", "path_with_escaped_slashes_action: REJECT_REQUEST", "path_with_escaped_slashes_action: KEEP_UNCHANGED", envoytest.EscapedSlashes},
		{"escaped slashes unset", "                path_with_escaped_slashes_action: REJECT_REQUEST\n", "", envoytest.EscapedSlashes},
		{"escaped slashes redirected", "path_with_escaped_slashes_action: REJECT_REQUEST", "path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT", ""},
		{"use_remote_address unset", "                use_remote_address: true\n", "", envoytest.UseRemoteAddress},
		{"use_remote_address false", "use_remote_address: true", "use_remote_address: false", envoytest.UseRemoteAddress},
		{"underscore headers allowed", "{headers_with_underscores_action: REJECT_REQUEST}", "{headers_with_underscores_action: ALLOW}", envoytest.UnderscoreHeaders},
		{"underscore headers dropped", "{headers_with_underscores_action: REJECT_REQUEST}", "{headers_with_underscores_action: DROP_HEADER}", envoytest.UnderscoreHeaders},
		{"route disables ext_authz", sendRoute, "disabled: true", envoytest.PerRoute},
		{"route sends the check elsewhere", sendRoute, "check_settings: {grpc_service: {envoy_grpc: {cluster_name: elsewhere}}}", envoytest.PerRoute},
		{"route sends the body", sendRoute, "check_settings: {with_request_body: {max_request_bytes: 1}}", envoytest.WithRequestBody},
		{"an MCP route sends the whole body", sendRoute, "check_settings: {context_extensions: {meshguard.protocol: mcp, meshguard.service: mail}, with_request_body: {max_request_bytes: 1048576, pack_as_bytes: true}}", ""},
		{"an MCP route sends a prefix of the body", sendRoute, "check_settings: {context_extensions: {meshguard.protocol: mcp, meshguard.service: mail}, with_request_body: {max_request_bytes: 1048576, allow_partial_message: true}}", envoytest.WithRequestBody},
		{"an MCP route's body over the parser's bound", sendRoute, "check_settings: {context_extensions: {meshguard.protocol: mcp, meshguard.service: mail}, with_request_body: {max_request_bytes: 1048577}}", envoytest.WithRequestBody},
		{"an MCP route's body unbounded", sendRoute, "check_settings: {context_extensions: {meshguard.protocol: mcp, meshguard.service: mail}, with_request_body: {pack_as_bytes: true}}", envoytest.WithRequestBody},
		{"an MCP route without the body", sendRoute, "check_settings: {context_extensions: {meshguard.protocol: mcp, meshguard.service: mail}}", envoytest.WithRequestBody},
		{"an MCP route that stops buffering the body", sendRoute, "check_settings: {context_extensions: {meshguard.protocol: mcp, meshguard.service: mail}, with_request_body: {max_request_bytes: 1048576, pack_as_bytes: true}, disable_request_body_buffering: true}", envoytest.WithRequestBody},
		{"an MCP route sends the body elsewhere", sendRoute, "check_settings: {grpc_service: {envoy_grpc: {cluster_name: elsewhere}}, context_extensions: {meshguard.protocol: mcp}, with_request_body: {max_request_bytes: 1024}}", envoytest.PerRoute},
		{"route disables the filter", `{"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, ` + sendRoute + "}", `{"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}`, envoytest.PerRoute},
		{"virtual host disables ext_authz", "                      domains: [\"*\"]\n", "                      domains: [\"*\"]\n                      typed_per_filter_config: {envoy.filters.http.ext_authz: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true}}\n", envoytest.PerRoute},
		{"weighted cluster disables ext_authz", defaultPath + "                          route: {cluster: app}\n", defaultPath + "                          route: {weighted_clusters: {clusters: [{name: app, weight: 1, typed_per_filter_config: {envoy.filters.http.ext_authz: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true}}}]}}\n", envoytest.PerRoute},
		{"a WebSocket upgrade with a filter chain of its own", underscore, underscore + "                upgrade_configs: [{upgrade_type: websocket, filters: [" + router + "]}]\n", envoytest.AuthorizerFirst},
		{"a WebSocket upgrade asking MeshGuard first", underscore, underscore + "                upgrade_configs: [{upgrade_type: websocket, filters: [{name: envoy.filters.http.ext_authz, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz, " + authzConfig + ", grpc_service: {envoy_grpc: {cluster_name: meshguard}}}}, " + router + "]}]\n", ""},
		{"a WebSocket upgrade whose ext_authz fails open", underscore, underscore + "                upgrade_configs: [{upgrade_type: websocket, filters: [{name: envoy.filters.http.ext_authz, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz, failure_mode_allow: true, grpc_service: {envoy_grpc: {cluster_name: meshguard}}}}, " + router + "]}]\n", envoytest.FailureModeAllow},
		{"a WebSocket upgrade through http_filters", underscore, underscore + "                upgrade_configs: [{upgrade_type: websocket}]\n", ""},
		{"virtual hosts over VHDS", routeConfig, routeConfig + "                  vhds: {config_source: {ads: {}, resource_api_version: V3}}\n", envoytest.Routes},
		{"a tcp_proxy filter chain", "      filter_chains:\n", "      filter_chains:\n        - filter_chain_match: {destination_port: 9999}\n          filters: [{name: tcp, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: app}}]\n", envoytest.HTTPConnectionManager},
		{"no listeners", base[:strings.Index(base, "  clusters:")], "static_resources:\n", envoytest.BootstrapListeners},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := base
			if tc.old != "" {
				if !strings.Contains(base, tc.old) {
					t.Fatalf("the change %q finds nothing to change", tc.old)
				}
				doc = strings.Replace(base, tc.old, tc.new, 1)
			}
			b, err := envoy.ParseBootstrap([]byte(doc))
			if err != nil {
				t.Fatalf("the changed bootstrap does not parse: %v\n%s", err, doc)
			}
			expect(t, envoytest.CheckBootstrap(b), tc.want)
		})
	}
}

// expect fails unless vs breaks exactly want (nothing if want is "").
func expect(t *testing.T, vs []envoytest.Violation, want envoytest.Property) {
	t.Helper()
	var got []envoytest.Property
	for _, v := range vs {
		got = append(got, v.Property)
		if v.Where == "" || v.Problem == "" || !strings.Contains(v.Error(), string(v.Property)) {
			t.Errorf("violation %#v does not say where, what and why", v)
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if want == "" && len(got) != 0 || want != "" && !slices.Equal(got, []envoytest.Property{want}) {
		t.Fatalf("violations %q, want only %q:\n%v", got, want, vs)
	}
}

// wasmConfig is the ingress as MeshGuard's xDS serves it with the wasm
// filter: the filter's configuration over ECDS, routes over RDS.
func wasmConfig(t *testing.T) envoytest.Config {
	t.Helper()
	var c envoytest.Config
	l := &listenerv3.Listener{}
	must(t, protojson.Unmarshal([]byte(`{"name":"meshguard_ingress","filter_chains":[{"filters":[{"name":"envoy.filters.network.http_connection_manager","typed_config":{
		"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"stat_prefix":"i","normalize_path":true,"merge_slashes":true,"path_with_escaped_slashes_action":"REJECT_REQUEST","use_remote_address":true,
		"common_http_protocol_options":{"headers_with_underscores_action":"REJECT_REQUEST"},
		"rds":{"route_config_name":"meshguard_routes","config_source":{"ads":{},"resource_api_version":"V3"}},
		"http_filters":[
			{"name":"meshguard.wasm","config_discovery":{"config_source":{"ads":{},"resource_api_version":"V3"},"type_urls":["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}},
			{"name":"envoy.filters.http.router","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}`), l))
	rc := &routev3.RouteConfiguration{}
	must(t, protojson.Unmarshal([]byte(`{"name":"meshguard_routes","virtual_hosts":[{"name":"svc","domains":["svc"],"routes":[{"match":{"prefix":"/"},"route":{"cluster":"svc"}}]}]}`), rc))
	w := &wasmfilterv3.Wasm{Config: &wasmv3.PluginConfig{Name: "meshguard.wasm", FailurePolicy: wasmv3.FailurePolicy_FAIL_CLOSED}}
	a, err := anypb.New(w)
	must(t, err)
	// A proxyless gRPC client's listener: outbound, nothing to authorize.
	api := &listenerv3.Listener{Name: "svc", ApiListener: &listenerv3.ApiListener{}}
	c.Listeners = []*listenerv3.Listener{l, api}
	c.Routes = []*routev3.RouteConfiguration{rc}
	c.Extensions = []*corev3.TypedExtensionConfig{{Name: "meshguard.wasm", TypedConfig: a}}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWasmViolations: the wasm filter in place of ext_authz is held to
// the same: it runs first, fails closed, and takes its configuration only
// from MeshGuard.
func TestWasmViolations(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, c *envoytest.Config)
		want   envoytest.Property
	}{
		{"as served", func(*testing.T, *envoytest.Config) {}, ""},
		{"fails open", func(t *testing.T, c *envoytest.Config) {
			setPolicy(t, c, wasmv3.FailurePolicy_FAIL_OPEN)
		}, envoytest.WasmFailurePolicy},
		{"failure policy unspecified", func(t *testing.T, c *envoytest.Config) {
			setPolicy(t, c, wasmv3.FailurePolicy_UNSPECIFIED)
		}, envoytest.WasmFailurePolicy},
		{"no configuration resource", func(_ *testing.T, c *envoytest.Config) { c.Extensions = nil }, envoytest.WasmConfig},
		{"a default configuration", func(t *testing.T, c *envoytest.Config) {
			hcmFilter(t, c, func(cd *corev3.ExtensionConfigSource) { cd.DefaultConfig = c.Extensions[0].GetTypedConfig() })
		}, envoytest.WasmDefaultConfig},
		{"routes not served", func(_ *testing.T, c *envoytest.Config) { c.Routes = nil }, envoytest.Routes},
		{"only proxyless listeners", func(_ *testing.T, c *envoytest.Config) { c.Listeners = c.Listeners[1:] }, envoytest.Listeners},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wasmConfig(t)
			tc.change(t, &c)
			expect(t, envoytest.Check(c), tc.want)
		})
	}
}

func setPolicy(t *testing.T, c *envoytest.Config, p wasmv3.FailurePolicy) {
	t.Helper()
	a, err := anypb.New(&wasmfilterv3.Wasm{Config: &wasmv3.PluginConfig{Name: "meshguard.wasm", FailurePolicy: p}})
	must(t, err)
	c.Extensions[0].TypedConfig = a
}

// hcmFilter changes the ingress's wasm filter's config discovery.
func hcmFilter(t *testing.T, c *envoytest.Config, change func(*corev3.ExtensionConfigSource)) {
	t.Helper()
	fc := c.Listeners[0].GetFilterChains()[0].GetFilters()[0]
	var m hcmv3.HttpConnectionManager
	must(t, fc.GetTypedConfig().UnmarshalTo(&m))
	change(m.GetHttpFilters()[0].GetConfigDiscovery())
	a, err := anypb.New(&m)
	must(t, err)
	fc.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
}
