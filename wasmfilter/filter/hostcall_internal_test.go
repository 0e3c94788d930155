package filter

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
)

// decodeMap reads proxy-wasm's serialised header map as a host does,
// failing on anything out of place: sizes that overrun, a missing NUL
// terminator, bytes left over.
func decodeMap(t *testing.T, b []byte) [][2]string {
	t.Helper()
	if len(b) < 4 {
		t.Fatalf("%d bytes: no count", len(b))
	}
	n := int(binary.LittleEndian.Uint32(b))
	sizes, data := 4, 4+8*n
	if data > len(b) {
		t.Fatalf("%d pairs overrun %d bytes", n, len(b))
	}
	out := make([][2]string, n)
	for i := range n {
		for j := range 2 {
			size := int(binary.LittleEndian.Uint32(b[sizes:]))
			sizes += 4
			if data+size >= len(b) || b[data+size] != 0 {
				t.Fatalf("pair %d, field %d: %d bytes at %d not NUL-terminated in %q", i, j, size, data, b)
			}
			out[i][j] = string(b[data : data+size])
			data += size + 1
		}
	}
	if data != len(b) {
		t.Fatalf("%d bytes left over", len(b)-data)
	}
	return out
}

func TestMapBytes(t *testing.T) {
	long := string(bytes.Repeat([]byte("t"), 900))
	for _, tc := range []struct {
		name string
		hs   [][2]string
	}{
		{"none", nil},
		{"one", [][2]string{{":method", "GET"}}},
		{"empty value", [][2]string{{"x-empty", ""}, {":path", "/"}}},
		{"a request", [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + long}, {"x-meshguard-agent-id", "ag_1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeMap(t, mapBytes(tc.hs))
			if len(got) != len(tc.hs) {
				t.Fatalf("%d pairs, want %d", len(got), len(tc.hs))
			}
			for i := range got {
				if got[i] != tc.hs[i] {
					t.Errorf("pair %d: %q, want %q", i, got[i], tc.hs[i])
				}
			}
		})
	}
}

// TestKeptPairsBounded: an upstream map of more than maxKeptPairs headers
// is built once and not kept, so one huge request does not pin its size
// in the VM's memory for good.
func TestKeptPairsBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		kept bool
	}{{"small", 8, true}, {"at the bound", maxKeptPairs, true}, {"over the bound", maxKeptPairs + 1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			v := &vm{}
			v.keepPairs(make([][2]string, tc.n))
			if kept := v.pairs != nil; kept != tc.kept {
				t.Fatalf("%d pairs kept: %v, want %v", tc.n, kept, tc.kept)
			}
		})
	}
}

// TestReusedPairsKeepNoToken: the upstream pairs and headers the VM keeps
// between requests hold nothing of the last request once it is forwarded,
// so its token (or the delegation token minted for it) does not stay
// reachable in the VM's memory until the next request
// overwrites it.
func TestReusedPairsKeepNoToken(t *testing.T) {
	env := filtertest.New(t)
	v := NewVM().(*vm)
	opt := proxytest.NewEmulatorOption().WithVMContext(v).WithPluginConfiguration(env.Config()).
		WithProperty([]string{"request", "time"}, binary.LittleEndian.AppendUint64(nil, uint64(filtertest.Now.UnixNano()))).
		WithProperty([]string{"source", "address"}, []byte("10.1.2.3:40000"))
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	if !host.StartVM() || host.StartPlugin() != types.OnPluginStartStatusOK {
		t.Fatal("the filter did not start")
	}
	for i := range 2 { // the second request reuses the first one's buffers
		id := host.InitializeHttpContext()
		hdrs := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + env.OrchT}}
		if a := host.CallOnRequestHeaders(id, hdrs, true); a != types.ActionContinue {
			t.Fatalf("request %d: action %v, want an allow", i, a)
		}
		if cap(v.pairs) == 0 {
			t.Fatalf("request %d: no pairs kept: the test does not test reuse", i)
		}
		for j, kv := range v.pairs[:cap(v.pairs)] {
			if kv != [2]string{} {
				t.Errorf("request %d: kept pair %d is %q", i, j, kv)
			}
		}
		if cap(v.set) == 0 {
			t.Fatalf("request %d: no upstream headers kept: the test does not test their reuse", i)
		}
		for j, h := range v.set[:cap(v.set)] {
			if h != (engine.Header{}) {
				t.Errorf("request %d: kept upstream header %d is %q", i, j, h)
			}
		}
		host.CompleteHttpContext(id)
	}
}

// TestPropertyPaths: a property's path as the host reads it is its names
// NUL-separated, as the SDK serialises it (the compiled filter hands the
// host raw; natively the SDK serialises names).
func TestPropertyPaths(t *testing.T) {
	for _, tc := range []struct {
		p    *property
		want string
	}{
		{propRequestTime, "request\x00time"},
		{propSourceAddress, "source\x00address"},
		{newProperty("one"), "one"},
	} {
		if string(tc.p.raw) != tc.want {
			t.Errorf("%q: raw %q, want %q", tc.p.names, tc.p.raw, tc.want)
		}
	}
}
