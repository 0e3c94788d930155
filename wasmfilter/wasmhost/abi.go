package wasmhost

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero/api"
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// The ABI's status codes (proxy-wasm's WasmResult; the SDK's internal
// package defines those it reads).
const (
	statusOK                  = 0
	statusNotFound            = 1
	statusBadArgument         = 2
	statusInvalidMemoryAccess = 6
	statusInternalFailure     = 10
)

// The map types (proxy-wasm's MapType).
const (
	mapRequestHeaders   = 0
	mapRequestTrailers  = 1
	mapResponseHeaders  = 2
	mapResponseTrailers = 3
	mapCallHeaders      = 6
	mapCallTrailers     = 7
)

// The buffer types (proxy-wasm's BufferType).
const (
	bufRequestBody    = 0
	bufResponseBody   = 1
	bufCallBody       = 4
	bufVMConfig       = 6
	bufPluginConfig   = 7
	maxPendingCallout = 4096 // bounds what a guest can queue unanswered
)

// hostFunc is one env import: its parameters (all return an i32 status)
// and its stack-based implementation.
type hostFunc struct {
	params []api.ValueType
	fn     api.GoModuleFunc
}

// abiFunc is a host function's body: the VM, the guest's memory and the
// stack's parameters in, a status out.
type abiFunc func(v *VM, mem api.Memory, p []uint64) uint32

// fn makes a host function of f with the given parameters. An i32 on
// wazero's stack may carry garbage in its upper 32 bits: they are cleared
// before f reads them.
func fn(params []api.ValueType, f abiFunc) hostFunc {
	return hostFunc{params, func(ctx context.Context, mod api.Module, stack []uint64) {
		v, _ := ctx.Value(vmKey{}).(*VM)
		if v == nil {
			panic(fmt.Errorf("wasmhost: host call outside a VM's call"))
		}
		for i, t := range params {
			if t == i32 {
				stack[i] = uint64(uint32(stack[i]))
			}
		}
		stack[0] = uint64(f(v, mod.Memory(), stack))
	}}
}

func params(n int) []api.ValueType { return slices.Repeat([]api.ValueType{i32}, n) }

// hostFunctions is every env import the host implements.
func hostFunctions() map[string]hostFunc {
	return map[string]hostFunc{
		"proxy_log":                          fn(params(3), proxyLog),
		"proxy_get_property":                 fn(params(4), getProperty),
		"proxy_get_header_map_value":         fn(params(5), getMapValue),
		"proxy_replace_header_map_value":     fn(params(5), replaceMapValue),
		"proxy_remove_header_map_value":      fn(params(3), removeMapValue),
		"proxy_get_header_map_pairs":         fn(params(3), getMapPairs),
		"proxy_set_header_map_pairs":         fn(params(3), setMapPairs),
		"proxy_get_buffer_bytes":             fn(params(5), getBuffer),
		"proxy_set_buffer_bytes":             fn(params(5), setBuffer),
		"proxy_send_local_response":          fn(params(8), sendLocalResponse),
		"proxy_continue_stream":              fn(params(1), continueStream),
		"proxy_http_call":                    fn(params(10), httpCall),
		"proxy_set_tick_period_milliseconds": fn(params(1), setTickPeriod),
		"proxy_set_effective_context":        fn(params(1), setEffectiveContext),
		"proxy_done":                         fn(nil, proxyDone),
		"proxy_define_metric":                fn(params(4), defineMetric),
		"proxy_increment_metric":             fn([]api.ValueType{i32, i64}, incrementMetric),
	}
}

// read is size bytes of guest memory at ptr: a view, to be copied if kept.
func read(mem api.Memory, ptr, size uint64) ([]byte, bool) {
	if size == 0 {
		return nil, true
	}
	return mem.Read(uint32(ptr), uint32(size))
}

// out copies data into memory the guest allocates and writes its address
// and size at ptrPtr and sizePtr, as proxy-wasm-cpp-host's
// copyToPointerSize: nothing is allocated for empty data.
func (v *VM) out(mem api.Memory, data []byte, ptrPtr, sizePtr uint64) uint32 {
	if _, ok := mem.Read(uint32(ptrPtr), 4); !ok {
		return statusInvalidMemoryAccess
	}
	if _, ok := mem.Read(uint32(sizePtr), 4); !ok {
		return statusInvalidMemoryAccess
	}
	var ptr uint32
	if len(data) > 0 {
		v.alloc[0] = uint64(len(data))
		if err := v.g.alloc.CallWithStack(v.ctx, v.alloc[:]); err != nil {
			panic(fmt.Errorf("wasmhost: proxy_on_memory_allocate: %w", err))
		}
		ptr = uint32(v.alloc[0])
		if ptr == 0 || !mem.Write(ptr, data) {
			return statusInvalidMemoryAccess
		}
	}
	mem.WriteUint32Le(uint32(ptrPtr), ptr)
	mem.WriteUint32Le(uint32(sizePtr), uint32(len(data)))
	return statusOK
}

// plugin is the plugin of the effective context.
func (v *VM) plugin() *Plugin {
	if s := v.streams[v.current]; s != nil {
		return s.p
	}
	return v.plugins[v.current]
}

func proxyLog(v *VM, mem api.Memory, p []uint64) uint32 {
	msg, ok := read(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	if len(v.logs) >= maxLogs {
		v.dropped++
		return statusOK
	}
	v.logs = append(v.logs, Log{Level: uint32(p[0]), Message: string(msg)})
	return statusOK
}

func getProperty(v *VM, mem api.Memory, p []uint64) uint32 {
	path, ok := read(mem, p[0], p[1])
	if !ok {
		return statusInvalidMemoryAccess
	}
	var value []byte
	found := false
	if s := v.streams[v.current]; s != nil {
		value, found = s.props[string(path)]
	}
	if pl := v.plugin(); !found && pl != nil {
		value, found = pl.props[string(path)]
	}
	if !found {
		return statusNotFound
	}
	return v.out(mem, value, p[2], p[3])
}

// headerMap is the map of type t in the effective context.
func (v *VM) headerMap(t uint64) (*[][2]string, uint32) {
	switch t {
	case mapCallHeaders, mapCallTrailers:
		if v.callResp == nil {
			return nil, statusNotFound
		}
		if t == mapCallHeaders {
			return &v.callResp.headers, statusOK
		}
		return &v.callResp.trailers, statusOK
	case mapRequestHeaders, mapRequestTrailers, mapResponseHeaders, mapResponseTrailers:
		s := v.streams[v.current]
		if s == nil {
			return nil, statusNotFound
		}
		return [...]*[][2]string{&s.reqHeaders, &s.reqTrailers, &s.respHeaders, &s.respTrailers}[t], statusOK
	}
	return nil, statusBadArgument
}

func getMapValue(v *VM, mem api.Memory, p []uint64) uint32 {
	m, st := v.headerMap(p[0])
	if m == nil {
		return st
	}
	key, ok := read(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	for _, kv := range *m {
		// Envoy looks the key up lower-cased.
		if strings.EqualFold(kv[0], string(key)) {
			return v.out(mem, []byte(kv[1]), p[3], p[4])
		}
	}
	return statusNotFound
}

func replaceMapValue(v *VM, mem api.Memory, p []uint64) uint32 {
	m, st := v.headerMap(p[0])
	if m == nil {
		return st
	}
	key, ok1 := read(mem, p[1], p[2])
	value, ok2 := read(mem, p[3], p[4])
	if !ok1 || !ok2 {
		return statusInvalidMemoryAccess
	}
	k := strings.ToLower(string(key))
	i := slices.IndexFunc(*m, func(kv [2]string) bool { return strings.EqualFold(kv[0], k) })
	if i < 0 {
		*m = append(*m, [2]string{k, string(value)})
		return statusOK
	}
	// Envoy's setCopy: the first entry takes the value, the rest go.
	(*m)[i][1] = string(value)
	rest := slices.DeleteFunc((*m)[i+1:], func(kv [2]string) bool { return strings.EqualFold(kv[0], k) })
	*m = (*m)[:i+1+len(rest)]
	return statusOK
}

func removeMapValue(v *VM, mem api.Memory, p []uint64) uint32 {
	m, st := v.headerMap(p[0])
	if m == nil {
		return st
	}
	key, ok := read(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	*m = slices.DeleteFunc(*m, func(kv [2]string) bool { return strings.EqualFold(kv[0], string(key)) })
	return statusOK
}

func getMapPairs(v *VM, mem api.Memory, p []uint64) uint32 {
	m, st := v.headerMap(p[0])
	if m == nil {
		return st
	}
	return v.out(mem, encodeMap(*m), p[1], p[2])
}

func setMapPairs(v *VM, mem api.Memory, p []uint64) uint32 {
	m, st := v.headerMap(p[0])
	if m == nil {
		return st
	}
	b, ok := read(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	pairs, err := decodeMap(b)
	if err != nil {
		return statusBadArgument
	}
	*m = pairs // Envoy removes every key, then adds each pair
	return statusOK
}

// buffer is the buffer of type t in the effective context; has says it
// exists at all.
func (v *VM) buffer(t uint64) (buf *[]byte, has bool, st uint32) {
	switch t {
	case bufRequestBody, bufResponseBody:
		s := v.streams[v.current]
		if s == nil {
			return nil, false, statusNotFound
		}
		if t == bufRequestBody {
			return &s.reqBody, s.hasReqBody, statusOK
		}
		return &s.respBody, s.hasRespBody, statusOK
	case bufCallBody:
		if v.callResp == nil {
			return nil, false, statusNotFound
		}
		return &v.callResp.body, true, statusOK
	case bufVMConfig:
		return &v.vmConf, true, statusOK
	case bufPluginConfig:
		pl := v.plugin()
		if pl == nil {
			return nil, false, statusNotFound
		}
		return &pl.config, true, statusOK
	}
	return nil, false, statusBadArgument
}

func getBuffer(v *VM, mem api.Memory, p []uint64) uint32 {
	buf, has, st := v.buffer(p[0])
	if buf == nil || !has {
		return max(st, statusNotFound)
	}
	start, size := uint32(p[1]), uint32(p[2])
	if int(start) > len(*buf) {
		return statusBadArgument
	}
	data := (*buf)[start:]
	data = data[:min(uint32(len(data)), size)]
	return v.out(mem, data, p[3], p[4])
}

func setBuffer(v *VM, mem api.Memory, p []uint64) uint32 {
	buf, _, st := v.buffer(p[0])
	if buf == nil || p[0] == bufVMConfig || p[0] == bufPluginConfig {
		return max(st, statusBadArgument)
	}
	data, ok := read(mem, p[3], p[4])
	if !ok {
		return statusInvalidMemoryAccess
	}
	start, size := int(uint32(p[1])), int(uint32(p[2]))
	switch {
	case start == 0 && size == 0: // prepend
		*buf = append(slices.Clone(data), *buf...)
	case start == 0 && size >= len(*buf): // replace
		*buf = slices.Clone(data)
	case start >= len(*buf): // append
		*buf = append(*buf, data...)
	default:
		return statusBadArgument
	}
	return statusOK
}

func sendLocalResponse(v *VM, mem api.Memory, p []uint64) uint32 {
	s := v.streams[v.current]
	if s == nil {
		return statusNotFound
	}
	details, ok1 := read(mem, p[1], p[2])
	body, ok2 := read(mem, p[3], p[4])
	hdrs, ok3 := read(mem, p[5], p[6])
	if !ok1 || !ok2 || !ok3 {
		return statusInvalidMemoryAccess
	}
	headers, err := decodeMap(hdrs)
	if err != nil {
		return statusBadArgument
	}
	s.local = &LocalResponse{Status: uint32(p[0]), Details: string(details), Headers: headers,
		Body: slices.Clone(body), GRPCStatus: int32(uint32(p[7]))}
	return statusOK
}

func continueStream(v *VM, _ api.Memory, p []uint64) uint32 {
	s := v.streams[v.current]
	if s == nil {
		return statusNotFound
	}
	if p[0] > 1 { // request (0) or response (1): the others are L4
		return statusBadArgument
	}
	s.resumed++
	s.action = Continue
	return statusOK
}

func httpCall(v *VM, mem api.Memory, p []uint64) uint32 {
	upstream, ok1 := read(mem, p[0], p[1])
	hdrs, ok2 := read(mem, p[2], p[3])
	body, ok3 := read(mem, p[4], p[5])
	trls, ok4 := read(mem, p[6], p[7])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return statusInvalidMemoryAccess
	}
	if _, ok := mem.Read(uint32(p[9]), 4); !ok {
		return statusInvalidMemoryAccess
	}
	headers, err1 := decodeMap(hdrs)
	trailers, err2 := decodeMap(trls)
	if err1 != nil || err2 != nil || len(upstream) == 0 {
		return statusBadArgument
	}
	if v.clusters != nil && !slices.Contains(v.clusters, string(upstream)) {
		return statusBadArgument // Envoy: no such cluster
	}
	// Envoy refuses a call without these.
	for _, h := range []string{":method", ":path", ":authority"} {
		if !slices.ContainsFunc(headers, func(kv [2]string) bool { return kv[0] == h && kv[1] != "" }) {
			return statusBadArgument
		}
	}
	pl := v.plugin()
	if pl == nil {
		return statusNotFound
	}
	if len(v.callouts) >= maxPendingCallout {
		return statusInternalFailure
	}
	v.calloutN++
	v.callouts = append(v.callouts, &Callout{ID: v.calloutN, Context: v.current, Plugin: pl.id, Upstream: string(upstream),
		Headers: headers, Body: slices.Clone(body), Trailers: trailers, Timeout: uint32(p[8])})
	mem.WriteUint32Le(uint32(p[9]), v.calloutN)
	return statusOK
}

func setTickPeriod(v *VM, _ api.Memory, p []uint64) uint32 {
	pl := v.plugins[v.current]
	if pl == nil {
		return statusBadArgument // a root context's call
	}
	pl.tickPeriod = uint32(p[0])
	return statusOK
}

func setEffectiveContext(v *VM, _ api.Memory, p []uint64) uint32 {
	id := uint32(p[0])
	if v.streams[id] == nil && v.plugins[id] == nil {
		return statusBadArgument
	}
	v.current = id
	return statusOK
}

// proxyDone: a root context Close left waiting is done; as Envoy, the
// host deletes it after the call into the guest returns, not within it.
func proxyDone(v *VM, _ api.Memory, _ []uint64) uint32 {
	pl := v.plugins[v.current]
	if pl == nil || !pl.closing {
		return statusNotFound
	}
	pl.closing = false
	v.finished = append(v.finished, pl)
	return statusOK
}

func defineMetric(v *VM, mem api.Memory, p []uint64) uint32 {
	if p[0] > 2 { // counter, gauge, histogram
		return statusBadArgument
	}
	name, ok := read(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	if _, ok := mem.Read(uint32(p[3]), 4); !ok {
		return statusInvalidMemoryAccess
	}
	id, ok := v.metricIDs[string(name)]
	if !ok {
		id = uint32(len(v.metricNames))
		v.metricIDs[string(name)] = id
		v.metricNames = append(v.metricNames, string(name))
		v.metricVals = append(v.metricVals, 0)
		v.metricTypes = append(v.metricTypes, uint32(p[0]))
	}
	mem.WriteUint32Le(uint32(p[3]), id)
	return statusOK
}

func incrementMetric(v *VM, _ api.Memory, p []uint64) uint32 {
	id := uint32(p[0])
	if int(id) >= len(v.metricVals) {
		return statusNotFound
	}
	if v.metricTypes[id] == 2 { // a histogram is recorded, not incremented
		return statusBadArgument
	}
	v.metricVals[id] += int64(p[1])
	return statusOK
}
