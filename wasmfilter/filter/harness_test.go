package filter_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/wasmfilter/filter"
)

// wasmPath is the compiled filter the "wasm" runs load: the file named by
// MESHGUARD_FILTER_WASM (make test passes bin/meshguard-filter.wasm, the
// artefact that ships), or one TestMain builds.
var wasmPath string

func TestMain(m *testing.M) {
	wasmPath = os.Getenv("MESHGUARD_FILTER_WASM")
	var dir string
	if wasmPath == "" {
		var err error
		if dir, err = os.MkdirTemp("", "meshguard-filter"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		wasmPath = filepath.Join(dir, "meshguard-filter.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasmPath, "..")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building the filter: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	if compiled != nil {
		_ = compiled.Close()
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// runner is one way to run the filter: natively (the Go code under the
// emulator) or compiled, under wazero.
type runner struct {
	name string
	wasm bool
	vm   types.VMContext
}

// compiled is the compiled filter's VM, made once (compiling 8 MB of
// wasm is most of these tests' time) and shared by every test's emulators,
// as Envoy shares a VM across configurations.
var (
	compiled    proxytest.WasmVMContext
	compileErr  error
	compileOnce sync.Once
)

// runners returns both.
func runners(t testing.TB) []runner {
	t.Helper()
	compileOnce.Do(func() { compiled, compileErr = compileVM() })
	if compileErr != nil {
		t.Fatal(compileErr)
	}
	return []runner{{"native", false, filter.NewVM()}, {"wasm", true, compiled}}
}

// compileVM compiles and starts the filter at wasmPath under wazero.
func compileVM() (proxytest.WasmVMContext, error) {
	code, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, err
	}
	return proxytest.NewWasmVMContext(code)
}

// isolated returns both runners with a compiled VM of its own: the audit
// queue belongs to the VM, so a test that counts records must not share one
// with tests that left theirs queued, unanswered.
func isolated(t *testing.T) []runner {
	t.Helper()
	vm, err := compileVM()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vm.Close() })
	return []runner{{"native", false, filter.NewVM()}, {"wasm", true, vm}}
}

// emu is one plugin configuration under the emulator.
type emu struct {
	t      testing.TB
	host   proxytest.HostEmulator
	status types.OnPluginStartStatus
	// answered counts the callouts of each context already answered.
	answered map[uint32]int
	// stop releases the emulator, which is process-wide: one at a time.
	stop func()
}

// start loads config into vm as Envoy would: the VM starts, then the
// plugin with its configuration. Requests are made at filtertest.Now from
// 10.1.2.3.
func start(t testing.TB, vm types.VMContext, config []byte) *emu {
	t.Helper()
	opt := proxytest.NewEmulatorOption().WithVMContext(vm).WithPluginConfiguration(config).
		WithProperty([]string{"request", "time"}, nanos(filtertest.Now)).
		WithProperty([]string{"source", "address"}, []byte("10.1.2.3:40000"))
	host, reset := proxytest.NewHostEmulator(opt)
	e := &emu{t: t, host: host, answered: map[uint32]int{}, stop: sync.OnceFunc(reset)}
	t.Cleanup(e.stop)
	if !host.StartVM() {
		t.Fatal("the VM did not start")
	}
	e.status = host.StartPlugin()
	return e
}

// at sets the time requests are made at.
func (e *emu) at(tm time.Time) {
	if err := e.host.SetProperty([]string{"request", "time"}, nanos(tm)); err != nil {
		e.t.Fatal(err)
	}
}

// nanos is a time as Envoy's request.time attribute: int64 nanoseconds
// since the epoch, little-endian.
func nanos(tm time.Time) []byte {
	return binary.LittleEndian.AppendUint64(nil, uint64(tm.UnixNano()))
}

// outcome is what the filter did with one request.
type outcome struct {
	id     uint32
	action types.Action
	local  *proxytest.LocalHttpResponse // a response the filter sent itself
	up     map[string]string            // the request headers as forwarded
}

// send makes one request.
func (e *emu) send(headers [][2]string) outcome {
	e.t.Helper()
	id := e.host.InitializeHttpContext()
	o := outcome{id: id, action: e.host.CallOnRequestHeaders(id, headers, true)}
	o.action = e.host.GetCurrentHttpStreamAction(id)
	o.local = e.host.GetSentLocalResponse(id)
	o.up = e.upstream(id)
	return o
}

// callouts returns the calls context id made that are not yet answered.
func (e *emu) callouts(id uint32) []proxytest.HttpCalloutAttribute {
	all := e.host.GetCalloutAttributesFromContext(id)
	return all[e.answered[id]:]
}

// answer forwards each pending call of context id to MeshGuard at base, as
// Envoy's async client would, and hands the answer back to the filter,
// native or compiled.
func (e *emu) answer(id uint32, c *http.Client, base string) {
	e.t.Helper()
	for _, call := range e.callouts(id) {
		e.answered[id]++
		status, body := forwardCall(e.t, c, base, call.Headers, call.Body)
		e.reply(call.CalloutID, status, body)
	}
}

// forwardCall sends a filter's call (its headers, pseudo-headers giving
// the method and path, and body) to MeshGuard at base, as Envoy's async
// client would, and returns the answer's status and body.
func forwardCall(t testing.TB, c *http.Client, base string, headers [][2]string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(header(headers, ":method"), base+header(headers, ":path"), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range headers {
		if !strings.HasPrefix(kv[0], ":") {
			req.Header.Add(kv[0], kv[1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, answer
}

// reply hands the filter an answer to one call.
func (e *emu) reply(callout uint32, status int, body []byte) {
	e.deliver(callout, [][2]string{{":status", fmt.Sprint(status)}}, body)
}

// deliver hands the filter an answer to one call as the host has it:
// headers (none when the call failed without a response) and body.
func (e *emu) deliver(callout uint32, headers [][2]string, body []byte) {
	e.host.CallOnHttpCallResponse(callout, headers, nil, body)
}

// upstream is context id's request headers as they stand: after a
// verdict, as they go upstream.
func (e *emu) upstream(id uint32) map[string]string {
	up := map[string]string{}
	for _, kv := range e.host.GetCurrentRequestHeaders(id) {
		up[kv[0]] = kv[1]
	}
	return up
}

// rootCallouts are the plugin's own calls (audit batches).
func (e *emu) rootCallouts() []proxytest.HttpCalloutAttribute {
	return e.callouts(proxytest.PluginContextID)
}

// header returns a header's value from a list.
func header(hs [][2]string, name string) string {
	for _, kv := range hs {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}
