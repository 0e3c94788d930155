package filter

import (
	"encoding/binary"
	"strings"

	"github.com/meshguard/meshguard/engine"
)

// property is a host property's path as the SDK takes it (names) and as
// the host reads it (raw: the names NUL-separated), serialised once
// rather than per read: the SDK serialises the path and allocates it each
// time.
type property struct {
	names []string
	raw   []byte
}

func newProperty(names ...string) *property {
	return &property{names: names, raw: []byte(strings.Join(names, "\x00"))}
}

// The properties every request reads (requestTime, sourceAddress).
var (
	propRequestTime   = newProperty("request", "time")
	propSourceAddress = newProperty("source", "address")
)

// mapBytes is hs in the proxy-wasm serialised form the host reads: the
// pair count, each pair's key and value sizes (all little-endian uint32),
// then each key and value followed by a NUL. The SDK's serialiser copies
// a byte at a time: a request's upstream map (with its token, ≈ 1.3 KB)
// cost a loop iteration per byte in wasm, where copy is one memory.copy.
// The buffer is new each time, not reused: the SDK's emulator keeps
// pointers into it (Envoy copies the map), so reusing it would rewrite
// the maps the emulator recorded.
func mapBytes(hs [][2]string) []byte {
	size := 4
	for _, kv := range hs {
		size += 8 + len(kv[0]) + 1 + len(kv[1]) + 1
	}
	buf := make([]byte, size) // zeroed: the NULs are already there
	binary.LittleEndian.PutUint32(buf, uint32(len(hs)))
	at := 4
	for _, kv := range hs {
		binary.LittleEndian.PutUint32(buf[at:], uint32(len(kv[0])))
		binary.LittleEndian.PutUint32(buf[at+4:], uint32(len(kv[1])))
		at += 8
	}
	for _, kv := range hs {
		at += copy(buf[at:], kv[0]) + 1
		at += copy(buf[at:], kv[1]) + 1
	}
	return buf
}

// maxKeptPairs bounds the header pairs the VM keeps for reuse.
const maxKeptPairs = 128

// keepPairs keeps hs's array for the next request's upstream map if it is
// within maxKeptPairs. The caller clears it after use.
func (v *vm) keepPairs(hs [][2]string) {
	if cap(hs) <= maxKeptPairs {
		v.pairs = hs
	} else {
		v.pairs = nil
	}
}

// keepSet keeps hs's array (a local allow's upstream headers, emptied by
// the caller) for the next request if it is within maxKeptPairs.
func (v *vm) keepSet(hs []engine.Header) {
	if cap(hs) <= maxKeptPairs {
		v.set = hs
	} else {
		v.set = nil
	}
}
