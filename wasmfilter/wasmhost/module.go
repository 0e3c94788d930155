package wasmhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Errors callers branch on.
var (
	// ErrUnknownImport: the module imports a function this host does not
	// implement.
	ErrUnknownImport = errors.New("wasmhost: import not implemented")
	// ErrMissingExport: the module lacks an export the host needs.
	ErrMissingExport = errors.New("wasmhost: export missing")
	// ErrRefused: proxy_on_vm_start returned false.
	ErrRefused = errors.New("wasmhost: the VM refused to start")
	// ErrTrap: a call into the guest trapped (or the host aborted it).
	ErrTrap = errors.New("wasmhost: guest call failed")
	// ErrNoCallout: no pending http_call has that id.
	ErrNoCallout = errors.New("wasmhost: no such callout")
)

// Module is a compiled filter. Compiling the MeshGuard filter takes
// seconds; VMs made from one Module share the compiled code, as Envoy's
// workers share one.
type Module struct {
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
}

// Compile compiles wasm under a new wazero runtime with the host's env
// module and WASI. It fails if the module imports anything the host does
// not implement.
func Compile(ctx context.Context, wasm []byte) (*Module, error) {
	r := wazero.NewRuntime(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("wasmhost: instantiating WASI: %w", err)
	}
	b := r.NewHostModuleBuilder("env")
	for name, f := range hostFunctions() {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, []api.ValueType{i32}).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("wasmhost: instantiating env: %w", err)
	}
	compiled, err := r.CompileModule(ctx, wasm)
	if err != nil {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("wasmhost: compiling: %w", err)
	}
	if err := checkImports(compiled); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	return &Module{runtime: r, compiled: compiled}, nil
}

// checkImports names the first import the host lacks.
func checkImports(m wazero.CompiledModule) error {
	known := hostFunctions()
	for _, f := range m.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch mod {
		case wasi_snapshot_preview1.ModuleName:
			continue // wazero's WASI checks its own at instantiation
		case "env":
			if _, ok := known[name]; ok {
				continue
			}
		}
		return fmt.Errorf("%w: %s.%s", ErrUnknownImport, mod, name)
	}
	return nil
}

// Close releases the runtime and every VM made from it.
func (m *Module) Close(ctx context.Context) error {
	return m.runtime.Close(ctx)
}

// guest holds the guest's exports, resolved once at instantiation.
type guest struct {
	alloc, vmStart, contextCreate, configure, done, log, del, tick api.Function
	reqHeaders, reqBody, respHeaders, respBody, callResponse       api.Function
}

// VM is one instance of the module: Envoy's VM on one worker. It holds the
// plugin and stream contexts, the callouts pending, the metrics and logs.
type VM struct {
	mod     api.Module
	g       guest
	ctx     context.Context // carries the VM to the host functions
	stack   [5]uint64       // for calls into the guest
	alloc   [1]uint64       // for proxy_on_memory_allocate, made inside those calls
	current uint32          // the effective context
	nextID  uint32
	vmConf  []byte

	// clusters are the upstream clusters proxy_http_call may name, as
	// Envoy's configured clusters (SetClusters); nil: any.
	clusters []string

	plugins  map[uint32]*Plugin
	streams  map[uint32]*Stream
	callouts []*Callout
	calloutN uint32
	callResp *callResponse // during proxy_on_http_call_response
	finished []*Plugin     // called proxy_done: deleted after the current call

	metricIDs   map[string]uint32
	metricNames []string
	metricVals  []int64
	metricTypes []uint32

	logs    []Log
	dropped int
}

// SetClusters names the upstream clusters the VM's proxy_http_call may
// call, as Envoy's configuration does: a call to any other is refused with
// BadArgument, as Envoy refuses a cluster it does not have. Until it is
// called, a call may name any cluster.
func (v *VM) SetClusters(names ...string) { v.clusters = slices.Clone(names) }

// Log is one proxy_log call.
type Log struct {
	Level   uint32
	Message string
}

// maxLogs bounds the log lines a VM keeps; later ones are counted only.
const maxLogs = 1024

type vmKey struct{}

// NewVM instantiates the module and starts it (proxy_on_vm_start) with
// vmConfig as its VM configuration.
func (m *Module) NewVM(ctx context.Context, vmConfig []byte) (*VM, error) {
	v := &VM{
		vmConf: vmConfig, nextID: 1,
		plugins: map[uint32]*Plugin{}, streams: map[uint32]*Stream{},
		metricIDs: map[string]uint32{},
	}
	v.ctx = context.WithValue(ctx, vmKey{}, v)
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(rand.Reader).
		WithStdout(io.Discard).WithStderr(io.Discard)
	mod, err := m.runtime.InstantiateModule(v.ctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: instantiating: %w", err)
	}
	v.mod = mod
	exports := []struct {
		name string
		fn   *api.Function
	}{
		{"proxy_on_memory_allocate", &v.g.alloc}, {"proxy_on_vm_start", &v.g.vmStart},
		{"proxy_on_context_create", &v.g.contextCreate}, {"proxy_on_configure", &v.g.configure},
		{"proxy_on_done", &v.g.done}, {"proxy_on_log", &v.g.log}, {"proxy_on_delete", &v.g.del},
		{"proxy_on_tick", &v.g.tick}, {"proxy_on_request_headers", &v.g.reqHeaders},
		{"proxy_on_request_body", &v.g.reqBody}, {"proxy_on_response_headers", &v.g.respHeaders},
		{"proxy_on_response_body", &v.g.respBody}, {"proxy_on_http_call_response", &v.g.callResponse},
	}
	for _, e := range exports {
		if *e.fn = mod.ExportedFunction(e.name); *e.fn == nil {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("%w: %s", ErrMissingExport, e.name)
		}
	}
	if mod.ExportedFunction("proxy_abi_version_0_2_0") == nil && mod.ExportedFunction("proxy_abi_version_0_2_1") == nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w: proxy_abi_version_0_2_0 or _0_2_1", ErrMissingExport)
	}
	// Envoy starts the VM on the first plugin's root context; the SDK
	// ignores the id.
	ok, err := v.call(0, v.g.vmStart, 0, uint64(len(vmConfig)))
	if err != nil {
		_ = mod.Close(ctx)
		return nil, err
	}
	if ok == 0 {
		_ = mod.Close(ctx)
		return nil, ErrRefused
	}
	return v, nil
}

// Close releases the VM's instance.
func (v *VM) Close(ctx context.Context) error {
	return v.mod.Close(ctx)
}

// call calls fn in the guest with context id as the effective context and
// returns its first result (0 if it has none).
func (v *VM) call(id uint32, fn api.Function, params ...uint64) (uint64, error) {
	v.current = id
	s := v.stack[:max(len(params), len(fn.Definition().ResultTypes()))]
	copy(s, params)
	if err := fn.CallWithStack(v.ctx, s); err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrTrap, fn.Definition().ExportNames()[0], err)
	}
	res := uint64(0)
	if len(fn.Definition().ResultTypes()) > 0 {
		res = s[0]
	}
	for len(v.finished) > 0 {
		pl := v.finished[0]
		v.finished = v.finished[1:]
		if err := pl.delete(); err != nil {
			return 0, err
		}
	}
	return res, nil
}

// newID returns a context id not used before in this VM.
func (v *VM) newID() uint32 {
	id := v.nextID
	v.nextID++
	return id
}

// Logs returns the lines the guest logged (up to maxLogs) and how many
// more it logged.
func (v *VM) Logs() ([]Log, int) { return v.logs, v.dropped }

// Metric returns a metric's value by name.
func (v *VM) Metric(name string) (int64, bool) {
	id, ok := v.metricIDs[name]
	if !ok {
		return 0, false
	}
	return v.metricVals[id], true
}

// Callouts returns the http_calls not answered yet, oldest first.
func (v *VM) Callouts() []*Callout { return v.callouts }

// Callout is one proxy_http_call, as Envoy's async client would send it.
type Callout struct {
	ID       uint32
	Context  uint32 // the effective context that made it
	Plugin   uint32 // its plugin's root context
	Upstream string // the cluster
	Headers  [][2]string
	Body     []byte
	Trailers [][2]string
	Timeout  uint32 // milliseconds
}

// callResponse is the answer proxy_on_http_call_response reads.
type callResponse struct {
	headers, trailers [][2]string
	body              []byte
}

// Respond answers callout id as Envoy does when the upstream responds:
// proxy_on_http_call_response on its plugin's root context, headers and
// body readable through proxy_get_header_map_pairs (map type 6) and
// proxy_get_buffer_bytes (buffer type 4) during the call. No headers is a
// call that failed without a response.
func (v *VM) Respond(id uint32, headers [][2]string, body []byte) error {
	i := -1
	for j, c := range v.callouts {
		if c.ID == id {
			i = j
		}
	}
	if i < 0 {
		return fmt.Errorf("%w: %d", ErrNoCallout, id)
	}
	c := v.callouts[i]
	v.callouts = append(v.callouts[:i], v.callouts[i+1:]...)
	v.callResp = &callResponse{headers: headers, body: body}
	defer func() { v.callResp = nil }()
	_, err := v.call(c.Plugin, v.g.callResponse, uint64(c.Plugin), uint64(id), uint64(len(headers)), uint64(len(body)), 0)
	return err
}
