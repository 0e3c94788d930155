//go:build unix

package filter_test

import (
	"os"
	"slices"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
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
	// block runs n cached allows on vm and returns the CPU they took; the
	// plugin's start and a first shipped batch (the token verified, the
	// decision cached) are outside it.
	block := func(vm types.VMContext, n int) int64 {
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
		requests(n)
		return cpuNanos() - at
	}
	var a, bb, ratio []float64
	for i := 0; b.Loop(); i++ {
		// A then B, then B then A: a drift in the machine's load
		// within a pair does not favour either.
		var ca, cb int64
		if i%2 == 0 {
			ca, cb = block(compiled, abBlock), block(vmB, abBlock)
		} else {
			cb, ca = block(vmB, abBlock), block(compiled, abBlock)
		}
		a, bb = append(a, float64(ca)/abBlock), append(bb, float64(cb)/abBlock)
		ratio = append(ratio, float64(cb)/float64(ca))
	}
	b.ReportMetric(median(a), "A-cpu-ns/req")
	b.ReportMetric(median(bb), "B-cpu-ns/req")
	b.ReportMetric(median(ratio), "B/A")
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
