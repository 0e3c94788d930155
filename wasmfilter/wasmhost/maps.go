package wasmhost

import (
	"encoding/binary"
	"errors"
)

// encodeMap is hs in proxy-wasm's serialised form: the pair count, each
// key's and value's size (little-endian uint32), then each key and value
// followed by a NUL.
func encodeMap(hs [][2]string) []byte {
	size := 4
	for _, kv := range hs {
		size += 8 + len(kv[0]) + len(kv[1]) + 2
	}
	buf := make([]byte, size)
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

// errMalformedMap: a serialised map whose sizes overrun it.
var errMalformedMap = errors.New("wasmhost: malformed map")

// decodeMap parses encodeMap's form, copying out of guest memory.
func decodeMap(b []byte) ([][2]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) < 4 {
		return nil, errMalformedMap
	}
	n := uint64(binary.LittleEndian.Uint32(b))
	if 4+8*n > uint64(len(b)) {
		return nil, errMalformedMap
	}
	out := make([][2]string, n)
	data := 4 + 8*n
	for i := range n {
		for j := range 2 {
			size := uint64(binary.LittleEndian.Uint32(b[4+8*i+4*uint64(j):]))
			if data+size+1 > uint64(len(b)) {
				return nil, errMalformedMap
			}
			out[i][j] = string(b[data : data+size])
			data += size + 1
		}
	}
	return out, nil
}
