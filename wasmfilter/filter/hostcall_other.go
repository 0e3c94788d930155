//go:build !wasip1

package filter

import "github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

// setRequestHeaders replaces the request's header map. Natively, under
// the SDK's emulator, the host calls are Go functions taking the map
// itself; the compiled filter serialises it (hostcall_wasm.go).
func setRequestHeaders(hs [][2]string) error {
	return proxywasm.ReplaceHttpRequestHeaders(hs)
}

// getProperty reads a property through the SDK.
func getProperty(p *property) ([]byte, error) {
	return proxywasm.GetProperty(p.names)
}
