// Command floor is the smallest proxy-wasm filter the benchmarks compare
// MeshGuard's against (BenchmarkFloor): built by the same toolchain and SDK,
// it makes the host calls the plugin configuration names and decides
// nothing. "none" lets every request through untouched: the cost of the
// emulator, the SDK and Go's wasm runtime alone. "calls" makes the host
// calls of one cached allow (the header map, request.time, source.address,
// the header map replaced with one more header, one counter). The other
// modes make one of those calls alone ("time2" the same one twice,
// "missing" a property the host does not have, so nothing is returned):
// they split the floor by call (docs/performance.md, sixth round).
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() { proxywasm.SetVMContext(&vm{}) }

type vm struct{ types.DefaultVMContext }

func (*vm) NewPluginContext(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	mode    string
	counter proxywasm.MetricCounter
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	cfg, err := proxywasm.GetPluginConfiguration()
	if err != nil {
		return false
	}
	p.mode = string(cfg)
	p.counter = proxywasm.DefineCounterMetric("floor.allow")
	return true
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &request{p: p} }

type request struct {
	types.DefaultHttpContext
	p *plugin
}

func (r *request) OnHttpRequestHeaders(int, bool) types.Action {
	switch r.p.mode {
	case "calls":
	case "headers":
		_, _ = proxywasm.GetHttpRequestHeaders()
		return types.ActionContinue
	case "time":
		_, _ = proxywasm.GetProperty([]string{"request", "time"})
		return types.ActionContinue
	case "missing":
		_, _ = proxywasm.GetProperty([]string{"no", "such"})
		return types.ActionContinue
	case "time2":
		_, _ = proxywasm.GetProperty([]string{"request", "time"})
		_, _ = proxywasm.GetProperty([]string{"request", "time"})
		return types.ActionContinue
	case "address":
		_, _ = proxywasm.GetProperty([]string{"source", "address"})
		return types.ActionContinue
	case "replace":
		_ = proxywasm.ReplaceHttpRequestHeaders(fixed)
		return types.ActionContinue
	case "counter":
		r.p.counter.Increment(1)
		return types.ActionContinue
	default:
		return types.ActionContinue
	}
	hdrs, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		return types.ActionPause
	}
	_, _ = proxywasm.GetProperty([]string{"request", "time"})
	_, _ = proxywasm.GetProperty([]string{"source", "address"})
	if err := proxywasm.ReplaceHttpRequestHeaders(append(hdrs, [2]string{"x-floor", "1"})); err != nil {
		return types.ActionPause
	}
	r.p.counter.Increment(1)
	return types.ActionContinue
}

// fixed is the map "replace" sets: the benchmark's request and one more
// header, as "calls" sets it, without reading the map first.
var fixed = [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer x"}, {"x-floor", "1"}}
