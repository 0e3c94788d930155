package filter

import (
	"bytes"
	"encoding/binary"
	"testing"
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

func TestAppendMap(t *testing.T) {
	long := string(bytes.Repeat([]byte("t"), 900))
	tests := []struct {
		name string
		hs   [][2]string
	}{
		{"none", nil},
		{"one", [][2]string{{":method", "GET"}}},
		{"empty value", [][2]string{{"x-empty", ""}, {":path", "/"}}},
		{"a request", [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + long}, {"x-meshguard-agent-id", "ag_1"}}},
	}
	// The buffer is carried from one case to the next, as the VM reuses
	// it: a shorter map after a longer one must not keep a stale byte
	// (a terminator left unwritten reads as the old map's data).
	var buf []byte
	for _, order := range []string{"growing", "shrinking"} {
		for i := range tests {
			tc := tests[i]
			if order == "shrinking" {
				tc = tests[len(tests)-1-i]
			}
			t.Run(order+"/"+tc.name, func(t *testing.T) {
				buf = appendMap(buf, tc.hs)
				got := decodeMap(t, buf)
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
}

// TestMapBufferBounded: a map over maxKeptMap is written but not kept, so
// one huge request does not pin its size in the VM's memory for good.
func TestMapBufferBounded(t *testing.T) {
	v := &vm{}
	big := [][2]string{{"x-big", string(bytes.Repeat([]byte("b"), maxKeptMap))}}
	buf := appendMap(v.mapBuf, big)
	if len(decodeMap(t, buf)) != 1 {
		t.Fatal("the big map did not round-trip")
	}
	if cap(buf) <= maxKeptMap {
		t.Fatalf("a %d-byte map fits the kept bound %d: the test does not test it", len(buf), maxKeptMap)
	}
	v.keepMap(buf)
	if v.mapBuf != nil {
		t.Fatalf("the VM kept a %d-byte buffer, over the bound %d", cap(v.mapBuf), maxKeptMap)
	}
	v.keepMap(appendMap(nil, [][2]string{{"a", "b"}}))
	if v.mapBuf == nil {
		t.Fatal("a small buffer was not kept for reuse")
	}
}
