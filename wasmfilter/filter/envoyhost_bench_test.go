//go:build unix

package filter_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/wasmfilter/wasmhost"
)

// hostRequests runs n requests of hdrs through p under wasmhost, each a
// stream of its own ended as Envoy ends it; every ship requests (0:
// never) it ticks and MeshGuard takes the batch.
func hostRequests(b *testing.B, vm *wasmhost.VM, p *wasmhost.Plugin, hdrs [][2]string, n, ship int) {
	for i := 1; i <= n; i++ {
		s, err := p.NewStream()
		if err != nil {
			b.Fatal(err)
		}
		if a, err := s.RequestHeaders(hdrs, true); err != nil || a != wasmhost.Continue {
			b.Fatalf("action %v, %v: %+v", a, err, s.Local())
		}
		if err := s.Done(); err != nil {
			b.Fatal(err)
		}
		if ship > 0 && i%ship == 0 {
			hostShip(b, vm, p)
		}
	}
}

// hostShip ticks p and answers its batch with a 200.
func hostShip(b *testing.B, vm *wasmhost.VM, p *wasmhost.Plugin) {
	if err := p.Tick(); err != nil {
		b.Fatal(err)
	}
	for _, c := range append([]*wasmhost.Callout(nil), vm.Callouts()...) {
		if err := vm.Respond(c.ID, [][2]string{{":status", "200"}}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// hostPlugin starts config on a new VM of m, with the harness's properties.
func hostPlugin(b *testing.B, m *wasmhost.Module, config []byte) (*wasmhost.VM, *wasmhost.Plugin) {
	vm := hostVM(b, m)
	return vm, newHostPlugin(b, vm, config)
}

// hostVM is a new VM of m with the harness's cluster, closed at b's end.
func hostVM(b *testing.B, m *wasmhost.Module) *wasmhost.VM {
	vm, err := m.NewVM(context.Background(), nil)
	if err != nil {
		b.Fatal(err)
	}
	vm.SetClusters(hostCluster)
	b.Cleanup(func() { _ = vm.Close(context.Background()) })
	return vm
}

func newHostPlugin(b *testing.B, vm *wasmhost.VM, config []byte) *wasmhost.Plugin {
	p, ok, err := vm.NewPlugin(config)
	if err != nil || !ok {
		b.Fatalf("plugin refused: %v", err)
	}
	p.SetProperty([]string{"request", "time"}, nanos(filtertest.Now))
	p.SetProperty([]string{"source", "address"}, []byte("10.1.2.3:40000"))
	return p
}

// BenchmarkEnvoyHost is BenchmarkRequest/wasm and BenchmarkFloor under
// wasmhost, the host shaped like Envoy's, on the same compiled filter:
// cached is a cached allow, cached-shipped the same with the audit queue
// shipped every 100 requests, mcp-2KB an allowed tools/call of 2 KB;
// floor=none and floor=calls are the floor module (testdata/floor) under
// the same host, so the module's own work is cached − floor=calls. CPU
// per request is what docs/performance.md reports.
func BenchmarkEnvoyHost(b *testing.B) {
	env := filtertest.New(b)
	m := compiledHost(b)
	config := benchConfig(b, env, 0)
	hdrs := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + env.OrchT}}
	for _, tc := range []struct {
		name string
		ship int
	}{{"cached", 0}, {"cached-shipped", 100}} {
		b.Run(tc.name, func(b *testing.B) {
			vm, p := hostPlugin(b, m, config)
			hostRequests(b, vm, p, hdrs, 1, 0) // the token verified, the decision cached
			defer reportCPU(b)()
			defer reportThreadCPU(b)()
			i := 0
			for b.Loop() {
				hostRequests(b, vm, p, hdrs, 1, 0)
				if i++; tc.ship > 0 && i%tc.ship == 0 {
					hostShip(b, vm, p)
				}
			}
		})
	}
	b.Run("mcp-2KB", func(b *testing.B) {
		_, p := hostPlugin(b, m, config)
		mcp := [][2]string{{":method", "POST"}, {":authority", "papers.mesh"}, {":path", "/mcp"}, {"authorization", "Bearer " + env.ToolT}, {"content-type", "application/json"}}
		body := mcpCall(2 << 10)
		defer reportCPU(b)()
		defer reportThreadCPU(b)()
		for b.Loop() {
			s, err := p.NewStream()
			if err != nil {
				b.Fatal(err)
			}
			if a, err := s.RequestHeaders(mcp, false); err != nil || a != wasmhost.Pause {
				b.Fatalf("headers: action %v, %v", a, err)
			}
			if a, err := s.RequestBody(body, true); err != nil || a != wasmhost.Continue {
				b.Fatalf("body: action %v, %v: %+v", a, err, s.Local())
			}
			if err := s.Done(); err != nil {
				b.Fatal(err)
			}
		}
	})
	floor, err := wasmhost.Compile(context.Background(), buildFloor(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = floor.Close(context.Background()) })
	for _, mode := range []string{"none", "calls"} {
		b.Run("floor="+mode, func(b *testing.B) {
			vm, p := hostPlugin(b, floor, []byte(mode))
			defer reportCPU(b)()
			defer reportThreadCPU(b)()
			for b.Loop() {
				hostRequests(b, vm, p, hdrs, 1, 0)
			}
		})
	}
}

// buildFloor builds testdata/floor as BenchmarkFloor does.
func buildFloor(b *testing.B) []byte {
	path := filepath.Join(b.TempDir(), "floor.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", path, "./testdata/floor")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the floor filter: %v\n%s", err, out)
	}
	code, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return code
}

// BenchmarkEnvoyHostAB is BenchmarkAB's method applied to the hosts: on
// the same .wasm, blocks of abBlock cached allows (shipped every abShip)
// alternate between wasmhost and the SDK's emulator, the CPU of each block
// taken. It reports each side's median CPU per request and the median
// per-block emulator/wasmhost ratio: how many times the Envoy-shaped
// host's cost the emulator's is.
func BenchmarkEnvoyHostAB(b *testing.B) {
	runners(b) // compiles the emulator's VM (compiled)
	m := compiledHost(b)
	env := filtertest.New(b)
	config := benchConfig(b, env, 0)
	hdrs := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + env.OrchT}}
	hvm := hostVM(b, m)
	alternate(b, func() int64 { return hostBlock(b, hvm, config, hdrs) },
		func() int64 { return emulatorBlock(b, compiled, config, hdrs) }, "wasmhost", "emulator")
}
