// Package wasmhost runs a compiled proxy-wasm filter under wazero with a
// host shaped like Envoy's C++ one. It exists to run and measure the
// compiled MeshGuard filter (bin/meshguard-filter.wasm) the way Envoy
// hosts it; the SDK's test emulator (proxytest) is not shaped like Envoy
// and its own costs dominate what it measures (docs/performance.md, the
// wasm filter's eighth round).
//
// How it follows Envoy (proxy-wasm-cpp-host and Envoy's wasm Context):
//
//   - The guest's exports, proxy_on_memory_allocate included, are
//     resolved once, when a VM is instantiated, and called with a reused
//     stack (CallWithStack), not looked up by name per call.
//   - Host functions are wazero api.GoModuleFunc values registered with
//     WithGoModuleFunction: they read their arguments from the stack, with
//     no reflection.
//   - Header maps, buffers and properties are copied into the guest's
//     memory (allocated by proxy_on_memory_allocate) and out of it: the
//     host keeps no pointer into guest memory.
//   - The ABI is 0.2.x as the proxy-wasm Go SDK speaks it (it exports
//     proxy_abi_version_0_2_0): the status codes (Ok 0, NotFound 1,
//     BadArgument 2, InvalidMemoryAccess 6, ...), map and buffer types,
//     the effective context, and proxy_on_done, proxy_on_log and
//     proxy_on_delete at a stream's end, in Envoy's order.
//   - WASI comes from wazero's wasi_snapshot_preview1, with the real
//     clocks and a cryptographic random source, as Envoy provides them.
//
// Compile checks every import the module has: one this host does not
// implement fails with ErrUnknownImport naming it, rather than a stub.
//
// A VM, like an Envoy worker's, is not safe for concurrent use.
package wasmhost
