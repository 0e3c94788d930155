package wasmhost

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The floor filter (../filter/testdata/floor), built and compiled once:
// the smallest module the SDK makes, so these tests need no MeshGuard.
var (
	floorOnce sync.Once
	floorMod  *Module
	floorErr  error
)

func floor(t *testing.T) *Module {
	t.Helper()
	floorOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wasmhost-floor")
		if err != nil {
			floorErr = err
			return
		}
		defer func() { _ = os.RemoveAll(dir) }()
		path := filepath.Join(dir, "floor.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", path, "../filter/testdata/floor")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			floorErr = errors.New(string(out))
			return
		}
		code, err := os.ReadFile(path)
		if err != nil {
			floorErr = err
			return
		}
		floorMod, floorErr = Compile(context.Background(), code)
	})
	if floorErr != nil {
		t.Fatal(floorErr)
	}
	return floorMod
}

// floorStream is a stream on a fresh VM running the floor in mode.
func floorStream(t *testing.T, mode string) (*VM, *Stream) {
	t.Helper()
	vm, err := floor(t).NewVM(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vm.Close(context.Background()) })
	p, ok, err := vm.NewPlugin([]byte(mode))
	if err != nil || !ok {
		t.Fatalf("plugin: %v, %v", ok, err)
	}
	s, err := p.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	return vm, s
}

var request = [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer x"}}

// TestFloorThroughTheHost: the floor's "calls" mode reads the header map
// and two properties, replaces the map with one more header and counts;
// what it set is what the host holds afterwards, and the stream ends as
// Envoy ends it.
func TestFloorThroughTheHost(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		want    [][2]string
		counted int64
	}{
		{"none", request, 0},
		{"calls", append(slices.Clone(request), [2]string{"x-floor", "1"}), 1},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			vm, s := floorStream(t, tc.mode)
			s.p.SetProperty([]string{"request", "time"}, make([]byte, 8))
			s.SetProperty([]string{"source", "address"}, []byte("10.1.2.3:40000"))
			a, err := s.RequestHeaders(request, true)
			if err != nil || a != Continue {
				t.Fatalf("action %v, %v", a, err)
			}
			if got := s.RequestHeadersNow(); !slices.Equal(got, tc.want) {
				t.Errorf("headers after the filter %v, want %v", got, tc.want)
			}
			if n, _ := vm.Metric("floor.allow"); n != tc.counted {
				t.Errorf("floor.allow = %d, want %d", n, tc.counted)
			}
			if err := s.Done(); err != nil {
				t.Fatal(err)
			}
			if len(vm.streams) != 0 {
				t.Errorf("streams left after Done: %d", len(vm.streams))
			}
		})
	}
}

// TestUnknownImport: a module importing what the host lacks is refused at
// Compile, naming the import, not stubbed.
func TestUnknownImport(t *testing.T) {
	for _, tc := range []struct{ module, name string }{{"env", "proxy_no_such_call"}, {"other", "f"}} {
		t.Run(tc.module+"."+tc.name, func(t *testing.T) {
			_, err := Compile(context.Background(), importing(tc.module, tc.name))
			if !errors.Is(err, ErrUnknownImport) || !strings.Contains(err.Error(), tc.module+"."+tc.name) {
				t.Fatalf("Compile: %v; want ErrUnknownImport naming %s.%s", err, tc.module, tc.name)
			}
		})
	}
}

// importing is the smallest module importing module.name as a () -> ()
// function.
func importing(module, name string) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	imp := append(append(append([]byte{1}, str(module)...), str(name)...), 0x00, 0x00)
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	b = append(b, 1, 4, 1, 0x60, 0, 0) // type section: one () -> ()
	b = append(b, 2, byte(len(imp)))
	return append(b, imp...)
}

// inGuest copies data into memory the guest allocates and returns its
// address.
func inGuest(t *testing.T, v *VM, data []byte) uint64 {
	t.Helper()
	stack := []uint64{uint64(max(len(data), 1))}
	if err := v.g.alloc.CallWithStack(v.ctx, stack); err != nil {
		t.Fatal(err)
	}
	if !v.mod.Memory().Write(uint32(stack[0]), data) {
		t.Fatal("write")
	}
	return stack[0]
}

// TestHostCallStatuses: the host's answers to what a guest can get wrong
// are the ABI's statuses (the SDK turns them into its errors): pointers
// outside guest memory InvalidMemoryAccess, unknown map and buffer types
// BadArgument, what is not there NotFound; and what is there comes back
// copied into guest memory.
func TestHostCallStatuses(t *testing.T) {
	v, s := floorStream(t, "none")
	s.reqHeaders = slices.Clone(request)
	s.SetProperty([]string{"source", "address"}, []byte("10.1.2.3:40000"))
	v.current = s.id
	bad := uint64(v.mod.Memory().Size()) + 16 // beyond the guest's memory
	ret := inGuest(t, v, make([]byte, 8))     // where the host writes a pointer and a size
	addr := inGuest(t, v, []byte("source\x00address"))
	missing := inGuest(t, v, []byte("no\x00such"))
	key := inGuest(t, v, []byte(":path"))
	absent := inGuest(t, v, []byte("x-absent"))
	junk := inGuest(t, v, []byte{9, 0, 0, 0, 1}) // nine pairs, no sizes
	call := inGuest(t, v, encodeMap([][2]string{{":method", "POST"}, {":authority", "mg"}}))
	cluster := inGuest(t, v, []byte("mg"))
	unknown := inGuest(t, v, []byte("xx"))
	v.SetClusters("mg")
	path := encodeMap([][2]string{{":method", "POST"}, {":path", "/"}, {":authority", "mg"}})
	fullCall := inGuest(t, v, path)
	for _, tc := range []struct {
		name   string
		fn     string
		args   []uint64
		want   uint32
		result string // what the host wrote at ret, if OK
	}{
		{"a property", "proxy_get_property", []uint64{addr, 14, ret, ret + 4}, statusOK, "10.1.2.3:40000"},
		{"a property not set", "proxy_get_property", []uint64{missing, 7, ret, ret + 4}, statusNotFound, ""},
		{"a path outside memory", "proxy_get_property", []uint64{bad, 14, ret, ret + 4}, statusInvalidMemoryAccess, ""},
		{"a result pointer outside memory", "proxy_get_property", []uint64{addr, 14, bad, ret + 4}, statusInvalidMemoryAccess, ""},
		{"a header", "proxy_get_header_map_value", []uint64{mapRequestHeaders, key, 5, ret, ret + 4}, statusOK, "/docs/readme"},
		{"a header not sent", "proxy_get_header_map_value", []uint64{mapRequestHeaders, absent, 8, ret, ret + 4}, statusNotFound, ""},
		{"an unknown map type", "proxy_get_header_map_value", []uint64{5, key, 5, ret, ret + 4}, statusBadArgument, ""},
		{"an unknown map type for pairs", "proxy_get_header_map_pairs", []uint64{99, ret, ret + 4}, statusBadArgument, ""},
		{"the call's headers outside a response", "proxy_get_header_map_pairs", []uint64{mapCallHeaders, ret, ret + 4}, statusNotFound, ""},
		{"pairs to a pointer outside memory", "proxy_get_header_map_pairs", []uint64{mapRequestHeaders, bad, ret + 4}, statusInvalidMemoryAccess, ""},
		{"a malformed map", "proxy_set_header_map_pairs", []uint64{mapRequestHeaders, junk, 5}, statusBadArgument, ""},
		{"an L4 buffer", "proxy_get_buffer_bytes", []uint64{3, 0, 10, ret, ret + 4}, statusBadArgument, ""},
		{"a body not sent", "proxy_get_buffer_bytes", []uint64{bufRequestBody, 0, 10, ret, ret + 4}, statusNotFound, ""},
		{"a metric not defined", "proxy_increment_metric", []uint64{7, 1}, statusNotFound, ""},
		{"a call without a path", "proxy_http_call", []uint64{cluster, 2, call, uint64(len(encodeMap([][2]string{{":method", "POST"}, {":authority", "mg"}}))), 0, 0, 0, 0, 1000, ret}, statusBadArgument, ""},
		{"a call to a cluster the host does not have", "proxy_http_call", []uint64{unknown, 2, fullCall, uint64(len(path)), 0, 0, 0, 0, 1000, ret}, statusBadArgument, ""},
		{"an unknown context", "proxy_set_effective_context", []uint64{999}, statusBadArgument, ""},
		{"an L4 stream resumed", "proxy_continue_stream", []uint64{2}, statusBadArgument, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := hostFunctions()[tc.fn]
			if !ok {
				t.Fatalf("no %s", tc.fn)
			}
			stack := make([]uint64, max(len(tc.args), 1))
			copy(stack, tc.args)
			// As wazero may hand them: garbage above each i32.
			for i, p := range f.params {
				if p == i32 {
					stack[i] |= 0xdead_beef << 32
				}
			}
			f.fn(v.ctx, v.mod, stack)
			if got := uint32(stack[0]); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if tc.want != statusOK {
				return
			}
			mem := v.mod.Memory()
			at, _ := mem.ReadUint32Le(uint32(ret))
			size, _ := mem.ReadUint32Le(uint32(ret) + 4)
			got, _ := mem.Read(at, size)
			if string(got) != tc.result {
				t.Fatalf("result %q, want %q", got, tc.result)
			}
		})
	}
	if len(v.Callouts()) != 0 {
		t.Errorf("a refused call was recorded: %+v", v.Callouts())
	}
}

// TestMapEncoding: what the host serialises, it parses back; a map whose
// sizes overrun it is refused.
func TestMapEncoding(t *testing.T) {
	hs := [][2]string{{":path", "/"}, {"x-empty", ""}, {"k", "v\x00w"}}
	got, err := decodeMap(encodeMap(hs))
	if err != nil || !slices.Equal(got, hs) {
		t.Fatalf("round trip %v, %v", got, err)
	}
	b := encodeMap(hs)
	binary.LittleEndian.PutUint32(b[4:], 1000)
	if _, err := decodeMap(b); !errors.Is(err, errMalformedMap) {
		t.Fatalf("overrunning map: %v", err)
	}
}
