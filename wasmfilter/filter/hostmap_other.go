//go:build !wasip1

package filter

import "github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

// setHeaderMap, natively (under the SDK's emulator, whose host calls are
// Go functions taking the map itself), hands over hs; the serialised buf
// is what the compiled filter hands Envoy.
func setHeaderMap(_ []byte, hs [][2]string) error {
	return proxywasm.ReplaceHttpRequestHeaders(hs)
}
