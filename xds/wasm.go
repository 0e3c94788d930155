package xds

import (
	"fmt"
	"net"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names of the wasm filter's resources.
const (
	// WasmFilter is the ingress listener's wasm filter, and the name of
	// the TypedExtensionConfig (ECDS) resource that configures it.
	WasmFilter = "meshguard.wasm"
	// HTTPCluster is MeshGuard's HTTP port, which the filter calls.
	HTTPCluster = "meshguard_http"
	wasmTypeURL = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
)

// Wasm puts MeshGuard's wasm filter in the ingress listener in place of
// ext_authz: the filter decides in the proxy and calls MeshGuard's HTTP
// port only when a decision needs it. Its configuration travels as its own
// resource (ECDS), so an agent, key or policy change updates the filter
// without touching the listener and draining its connections.
type Wasm struct {
	// Path is meshguard-filter.wasm as the Envoys see it (a local file).
	Path string
	// HTTPHost and HTTPPort are MeshGuard's HTTP port as the Envoys reach it.
	HTTPHost string
	HTTPPort int
	// Config is the filter's configuration (filterconfig.Generate); its
	// meshguard.cluster must be HTTPCluster.
	Config []byte
}

func (w *Wasm) check() error {
	if w.Path == "" || w.HTTPHost == "" || w.HTTPPort < 1 || w.HTTPPort > 65535 || len(w.Config) == 0 {
		return fmt.Errorf("xds: wasm options: path %q, MeshGuard HTTP %s:%d, %d bytes of configuration: all are required", w.Path, w.HTTPHost, w.HTTPPort, len(w.Config))
	}
	return nil
}

// wasmHTTPFilter is the listener's reference to the filter: its
// configuration comes over ADS, and until it has come the listener does not
// serve (no default: nothing passes undecided).
func wasmHTTPFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: WasmFilter, ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{
		ConfigSource: ads(), TypeUrls: []string{wasmTypeURL},
	}}}
}

// wasmExtension is the filter's configuration resource. The VM is shared by
// every configuration (its id does not change), so a new configuration
// starts a new plugin context, not a new VM; a configuration the filter
// refuses is NACKed and the last good one stays (fail closed before the
// first).
func wasmExtension(w *Wasm) *corev3.TypedExtensionConfig {
	plugin := &wasmv3.PluginConfig{
		Name: WasmFilter, RootId: WasmFilter,
		Vm: &wasmv3.PluginConfig_VmConfig{VmConfig: &wasmv3.VmConfig{
			VmId: WasmFilter, Runtime: "envoy.wasm.runtime.v8",
			Code: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
				Specifier: &corev3.DataSource_Filename{Filename: w.Path},
			}}},
		}},
		Configuration: mustAny(wrapperspb.String(string(w.Config))),
		FailurePolicy: wasmv3.FailurePolicy_FAIL_CLOSED,
	}
	return &corev3.TypedExtensionConfig{Name: WasmFilter, TypedConfig: mustAny(&wasmfilterv3.Wasm{Config: plugin})}
}

// httpEndpoint is MeshGuard's HTTP port, the endpoint of HTTPCluster.
func httpEndpoint(w *Wasm) string { return net.JoinHostPort(w.HTTPHost, strconv.Itoa(w.HTTPPort)) }
