package filter_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
)

// BenchmarkFloor is the floor under BenchmarkRequest/wasm: the smallest
// proxy-wasm filter (testdata/floor), built by the same toolchain and SDK
// and run in the same emulator with the same request. floor=none decides
// nothing (the emulator, the SDK's context bookkeeping and Go's wasm
// runtime alone); floor=calls makes the host calls of a cached allow. What
// BenchmarkRequest/wasm/cached costs above floor=calls is MeshGuard's own
// work in the module; docs/performance.md reports the split. The other
// modes make one of floor=calls' host calls each (testdata/floor), which
// splits the floor by call.
func BenchmarkFloor(b *testing.B) {
	env := filtertest.New(b)
	dir := b.TempDir()
	path := filepath.Join(dir, "floor.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", path, "./testdata/floor")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the floor filter: %v\n%s", err, out)
	}
	code, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	vm, err := proxytest.NewWasmVMContext(code)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = vm.Close() })
	hdrs := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + env.OrchT}}
	for _, mode := range []string{"none", "headers", "missing", "time", "time2", "address", "replace", "counter", "calls"} {
		b.Run("floor="+mode, func(b *testing.B) {
			e := start(b, vm, []byte(mode))
			defer e.stop()
			if e.status != types.OnPluginStartStatusOK {
				b.Fatal("refused")
			}
			defer reportCPU(b)()
			for b.Loop() {
				id := e.host.InitializeHttpContext()
				if a := e.host.CallOnRequestHeaders(id, hdrs, true); a != types.ActionContinue {
					b.Fatalf("action %v", a)
				}
				e.host.CompleteHttpContext(id)
			}
		})
	}
}
