package filter

import "encoding/binary"

// maxKeptMap bounds the serialised header map the VM keeps for reuse: a
// larger one is written once and left to the collector.
const maxKeptMap = 16 << 10

// appendMap writes hs into buf (its contents are overwritten, its capacity
// reused) in the proxy-wasm serialised form Envoy reads: the pair count,
// each pair's key and value sizes (all little-endian uint32), then each
// key and value followed by a NUL. The SDK's own serialiser copies a byte
// at a time and allocates per call; a request's upstream map (with its
// token, ≈ 1.3 KB) cost a loop iteration per byte in wasm.
func appendMap(buf []byte, hs [][2]string) []byte {
	size := 4
	for _, kv := range hs {
		size += 8 + len(kv[0]) + 1 + len(kv[1]) + 1
	}
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	binary.LittleEndian.PutUint32(buf, uint32(len(hs)))
	at := 4
	for _, kv := range hs {
		binary.LittleEndian.PutUint32(buf[at:], uint32(len(kv[0])))
		binary.LittleEndian.PutUint32(buf[at+4:], uint32(len(kv[1])))
		at += 8
	}
	for _, kv := range hs {
		at += copy(buf[at:], kv[0])
		buf[at] = 0
		at++
		at += copy(buf[at:], kv[1])
		buf[at] = 0
		at++
	}
	return buf
}

// setRequestHeaders replaces the request's header map in one host call,
// serialised into the VM's reused buffer (every callback of a VM runs on
// its one thread, and the host copies the map before the call returns).
func (v *vm) setRequestHeaders(hs [][2]string) error {
	buf := appendMap(v.mapBuf, hs)
	v.keepMap(buf)
	return setHeaderMap(buf, hs)
}

// keepMap keeps buf for the next map if it is within maxKeptMap, and
// lets a larger one go.
func (v *vm) keepMap(buf []byte) {
	if cap(buf) <= maxKeptMap {
		v.mapBuf = buf
	} else {
		v.mapBuf = nil
	}
}
