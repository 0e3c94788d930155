//go:build unix

package filter_test

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/wasmfilter/wasmhost"
)

// abBlock is how many cached allows one block of BenchmarkAB makes on one
// .wasm before it turns to the other; abShip ships the audit queue every
// so many requests, as a proxy does (BenchmarkRequest/wasm/cached-shipped).
const (
	abBlock = 300
	abShip  = 100
)

// BenchmarkAB compares two compiled filters in one process: the .wasm at
// wasmPath (A: MESHGUARD_FILTER_WASM, or the one TestMain builds) and the
// one named by MESHGUARD_FILTER_WASM_B (B), both loaded under wazero, a
// block of abBlock cached allows on each in turn per iteration, the CPU of
// each block taken. On a shared machine the cost of one .wasm varies more
// between runs (1.1–1.6×) than a change to the module moves it; blocks
// alternated within one process see the same load, so their ratio, taken
// block by block, is what docs/performance.md reports. It reports the
// median B/A ratio and each side's median CPU per request; A against
// itself (B the same file) is the null. Skipped without
// MESHGUARD_FILTER_WASM_B.
func BenchmarkAB(b *testing.B) {
	pathB := os.Getenv("MESHGUARD_FILTER_WASM_B")
	if pathB == "" {
		b.Skip("MESHGUARD_FILTER_WASM_B names no second .wasm to compare with")
	}
	runners(b) // compiles A (compiled)
	code, err := os.ReadFile(pathB)
	if err != nil {
		b.Fatal(err)
	}
	vmB, err := proxytest.NewWasmVMContext(code)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = vmB.Close() })
	env := filtertest.New(b)
	config := benchConfig(b, env, 0)
	hdrs := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + env.OrchT}}
	alternate(b, func() int64 { return emulatorBlock(b, compiled, config, hdrs) },
		func() int64 { return emulatorBlock(b, vmB, config, hdrs) }, "A", "B")
}

// BenchmarkABEnvoyHost is BenchmarkAB under wasmhost, the host shaped like
// Envoy's: the .wasm at wasmPath (A) and the one at MESHGUARD_FILTER_WASM_B
// (B), blocks of abBlock cached allows alternated, the audit queue shipped
// every abShip. The emulator's own costs (BenchmarkEnvoyHostAB) are then
// out of the ratio. Skipped without MESHGUARD_FILTER_WASM_B.
func BenchmarkABEnvoyHost(b *testing.B) {
	pathB := os.Getenv("MESHGUARD_FILTER_WASM_B")
	if pathB == "" {
		b.Skip("MESHGUARD_FILTER_WASM_B names no second .wasm to compare with")
	}
	code, err := os.ReadFile(pathB)
	if err != nil {
		b.Fatal(err)
	}
	mB, err := wasmhost.Compile(context.Background(), code)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = mB.Close(context.Background()) })
	env := filtertest.New(b)
	config := benchConfig(b, env, 0)
	hdrs := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + env.OrchT}}
	vmA, vmB := hostVM(b, compiledHost(b)), hostVM(b, mB)
	alternate(b, func() int64 { return hostBlock(b, vmA, config, hdrs) },
		func() int64 { return hostBlock(b, vmB, config, hdrs) }, "A", "B")
}

// emulatorBlock runs abBlock cached allows on vm under the SDK's emulator
// (a configuration of its own) and returns the CPU they took; the plugin's
// start and a first shipped batch (the token verified, the decision
// cached) are outside it. The audit queue is shipped every abShip.
func emulatorBlock(b *testing.B, vm types.VMContext, config []byte, hdrs [][2]string) int64 {
	e := start(b, vm, config)
	defer e.stop()
	requests := func(n int) {
		for i := 1; i <= n; i++ {
			id := e.host.InitializeHttpContext()
			if a := e.host.CallOnRequestHeaders(id, hdrs, true); a != types.ActionContinue {
				b.Fatalf("action %v: %+v", a, e.host.GetSentLocalResponse(id))
			}
			e.host.CompleteHttpContext(id)
			if i%abShip == 0 {
				e.host.Tick()
				for _, c := range e.rootCallouts() {
					e.answered[proxytest.PluginContextID]++
					e.reply(c.CalloutID, 200, nil)
				}
			}
		}
	}
	requests(abShip)
	at := cpuNanos()
	requests(abBlock)
	return cpuNanos() - at
}

// hostBlock is emulatorBlock under wasmhost, on a configuration of its own
// on vm.
func hostBlock(b *testing.B, vm *wasmhost.VM, config []byte, hdrs [][2]string) int64 {
	p := newHostPlugin(b, vm, config)
	defer func() { _ = p.Close() }()
	hostRequests(b, vm, p, hdrs, abShip, abShip)
	at := cpuNanos()
	hostRequests(b, vm, p, hdrs, abBlock, abShip)
	return cpuNanos() - at
}

// alternate runs blockA and blockB (each returning the CPU of abBlock
// requests) in turn, A-B then B-A, once per iteration, and reports each
// side's median CPU per request and the median B/A ratio taken block by
// block, named after a and b; and the ratio of the two sides' totals
// (B/A-total), which counts what a median leaves out: costs that come
// once in many blocks, such as a collection of the module's Go heap.
func alternate(b *testing.B, blockA, blockB func() int64, a, bn string) {
	var xa, xb, ratio []float64
	var ta, tb int64
	for i := 0; b.Loop(); i++ {
		// A then B, then B then A: a drift in the machine's load
		// within a pair does not favour either.
		var ca, cb int64
		if i%2 == 0 {
			ca, cb = blockA(), blockB()
		} else {
			cb, ca = blockB(), blockA()
		}
		ta, tb = ta+ca, tb+cb
		xa, xb = append(xa, float64(ca)/abBlock), append(xb, float64(cb)/abBlock)
		ratio = append(ratio, float64(cb)/float64(ca))
	}
	b.ReportMetric(median(xa), a+"-cpu-ns/req")
	b.ReportMetric(median(xb), bn+"-cpu-ns/req")
	b.ReportMetric(median(ratio), bn+"/"+a)
	if ta > 0 {
		b.ReportMetric(float64(tb)/float64(ta), bn+"/"+a+"-total")
		b.ReportMetric(float64(ta)/float64(len(xa)*abBlock), a+"-mean-cpu-ns/req")
	}
}

// median of xs (sorted in place).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
