//go:build wasip1

package filter

import (
	"fmt"
	"unsafe"
)

// mapTypeRequestHeaders is proxy-wasm's MapType for the request headers.
const mapTypeRequestHeaders = 0

//go:wasmimport env proxy_get_property
func proxyGetProperty(path *byte, pathSize int32, value unsafe.Pointer, valueSize *int32) int32

// getProperty reads a property; the host writes its value into memory it
// allocates in the module (proxy_on_memory_allocate).
func getProperty(p *property) ([]byte, error) {
	var data *byte
	var size int32
	if st := proxyGetProperty(unsafe.SliceData(p.raw), int32(len(p.raw)), unsafe.Pointer(&data), &size); st != 0 {
		return nil, fmt.Errorf("proxy_get_property %q: status %d", p.names, st)
	}
	return unsafe.Slice(data, size), nil
}

//go:wasmimport env proxy_set_header_map_pairs
func proxySetHeaderMapPairs(mapType int32, data *byte, size int32) int32

// setRequestHeaders replaces the request's header map in one host call,
// serialised by mapBytes.
func setRequestHeaders(hs [][2]string) error {
	buf := mapBytes(hs)
	if st := proxySetHeaderMapPairs(mapTypeRequestHeaders, unsafe.SliceData(buf), int32(len(buf))); st != 0 {
		return fmt.Errorf("proxy_set_header_map_pairs: status %d", st)
	}
	return nil
}
