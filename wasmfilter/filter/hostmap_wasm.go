//go:build wasip1

package filter

import (
	"fmt"
	"unsafe"
)

// mapTypeRequestHeaders is proxy-wasm's MapType for the request headers.
const mapTypeRequestHeaders = 0

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
