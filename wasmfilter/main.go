// Command meshguard-filter is MeshGuard's proxy-wasm filter for Envoy,
// built as a WASI reactor: GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared (make wasm writes bin/meshguard-filter.wasm). The
// filter itself is package filter; docs/wasm-filter.md describes it.
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

	"github.com/meshguard/meshguard/wasmfilter/filter"
)

// main is not called in a reactor; the host calls the exported proxy-wasm
// functions after _initialize has run init.
func main() {}

// init registers the filter. The proxy-wasm ABI leaves no other place: a
// reactor's only entry point before the host calls in is package
// initialisation (the SDK documents SetVMContext in init).
func init() { proxywasm.SetVMContext(filter.NewVM()) }
