package filter_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/wasmfilter/wasmhost"
)

// The compiled filter under wasmhost, the Envoy-shaped host: compiled once
// for the package's tests (seconds), a VM of its own per test (fresh
// audit queue, milliseconds).
var (
	hostModule     *wasmhost.Module
	hostModuleErr  error
	hostModuleOnce sync.Once
)

// compiledHost returns the compiled filter under wasmhost.
func compiledHost(t testing.TB) *wasmhost.Module {
	t.Helper()
	hostModuleOnce.Do(func() {
		code, err := os.ReadFile(wasmPath)
		if err != nil {
			hostModuleErr = err
			return
		}
		hostModule, hostModuleErr = wasmhost.Compile(context.Background(), code)
	})
	if hostModuleErr != nil {
		t.Fatal(hostModuleErr)
	}
	return hostModule
}

// ehost is one plugin configuration on a VM of its own under wasmhost,
// with the emulator harness's properties: requests made at filtertest.Now
// from 10.1.2.3.
type ehost struct {
	t       testing.TB
	vm      *wasmhost.VM
	p       *wasmhost.Plugin
	ok      bool
	streams map[uint32]*wasmhost.Stream
}

// hostCluster is the one upstream cluster the harness's wasmhost VMs have
// (wasmhost.VM.SetClusters): the cluster filtertest's configurations call
// MeshGuard through. A configuration naming another is refused as Envoy
// refuses it.
const hostCluster = "meshguard_http"

func startHost(t testing.TB, m *wasmhost.Module, config []byte) *ehost {
	t.Helper()
	vm, err := m.NewVM(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	vm.SetClusters(hostCluster)
	t.Cleanup(func() { _ = vm.Close(context.Background()) })
	p, ok, err := vm.NewPlugin(config)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		logs, _ := vm.Logs()
		t.Logf("wasmhost: the plugin refused its configuration; logged: %v", logs)
	}
	p.SetProperty([]string{"request", "time"}, nanos(filtertest.Now))
	p.SetProperty([]string{"source", "address"}, []byte("10.1.2.3:40000"))
	return &ehost{t: t, vm: vm, p: p, ok: ok, streams: map[uint32]*wasmhost.Stream{}}
}

// newStream makes a stream the ehost remembers (for its answers).
func (h *ehost) newStream() *wasmhost.Stream {
	h.t.Helper()
	s, err := h.p.NewStream()
	if err != nil {
		h.t.Fatal(err)
	}
	h.streams[s.ID()] = s
	return s
}

// send makes one request, headers only.
func (h *ehost) send(headers [][2]string) outcome {
	h.t.Helper()
	s := h.newStream()
	if _, err := s.RequestHeaders(headers, true); err != nil {
		h.t.Fatal(err)
	}
	return h.outcome(s)
}

// sendBody is emu.sendBody under wasmhost: headers, the body in two
// chunks, then the end of the stream.
func (h *ehost) sendBody(headers [][2]string, body []byte) (o outcome, early bool) {
	h.t.Helper()
	s := h.newStream()
	if a, err := s.RequestHeaders(headers, false); err != nil || a != wasmhost.Pause {
		h.t.Fatalf("decided at headers (action %v, %v, answer %+v): a protocol route waits for the body", a, err, s.Local())
	}
	half := len(body) / 2
	for _, chunk := range [][]byte{body[:half], body[half:]} {
		if _, err := s.RequestBody(chunk, false); err != nil {
			h.t.Fatal(err)
		}
		if s.Local() != nil {
			early = true
			break
		}
	}
	if !early {
		if _, err := s.RequestBody(nil, true); err != nil {
			h.t.Fatal(err)
		}
	}
	return h.outcome(s), early
}

// outcome is a stream's state in the emulator harness's terms.
func (h *ehost) outcome(s *wasmhost.Stream) outcome {
	o := outcome{id: s.ID(), action: types.Action(s.Action()), up: map[string]string{}}
	if l := s.Local(); l != nil {
		o.local = &proxytest.LocalHttpResponse{StatusCode: l.Status, StatusCodeDetail: l.Details, Data: l.Body, Headers: l.Headers, GRPCStatus: l.GRPCStatus}
	}
	for _, kv := range s.RequestHeadersNow() {
		o.up[kv[0]] = kv[1]
	}
	return o
}

// callouts are the unanswered calls context id made.
func (h *ehost) callouts(id uint32) []*wasmhost.Callout {
	var out []*wasmhost.Callout
	for _, c := range h.vm.Callouts() {
		if c.Context == id {
			out = append(out, c)
		}
	}
	return out
}

// answer forwards each pending call of context id to MeshGuard at base,
// as Envoy's async client would, and hands the answer to the filter.
func (h *ehost) answer(id uint32, c *http.Client, base string) {
	h.t.Helper()
	for _, call := range h.callouts(id) {
		status, body := forwardCall(h.t, c, base, call.Headers, call.Body)
		h.reply(call.ID, status, body)
	}
}

// reply answers one call with a status and body.
func (h *ehost) reply(id uint32, status int, body []byte) {
	h.t.Helper()
	if err := h.vm.Respond(id, [][2]string{{":status", strconv.Itoa(status)}}, body); err != nil {
		h.t.Fatal(err)
	}
}

// done ends every stream the ehost made.
func (h *ehost) done() {
	h.t.Helper()
	for id, s := range h.streams {
		if err := s.Done(); err != nil {
			h.t.Fatal(fmt.Errorf("stream %d: %w", id, err))
		}
		delete(h.streams, id)
	}
}
