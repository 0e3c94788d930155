package filter_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
)

// longRunCalls is how many calls TestCompiledVMLongRun sends: under wazero
// v1.7.2 (go.mod says why it must be v1.9.0 or later) the compiled filter's
// Go heap broke at call 412 of them.
const longRunCalls = 2000

// TestCompiledVMLongRun: the compiled VM the tests share decides request
// after request, as an Envoy worker's VM does for its lifetime, each one as
// it should; none traps. The calls carry 64 KB of arguments, so each moves
// large buffers through the guest's memory (the body, its parse, the audit
// record), where a runtime that corrupts the guest shows it soonest; a
// request without a token, refused, comes between them.
func TestCompiledVMLongRun(t *testing.T) {
	if testing.Short() {
		t.Skip("sends the compiled VM 2,000 calls of 64 KB")
	}
	env := filtertest.New(t)
	run := runners(t)[1]
	if !run.wasm {
		t.Fatal("want the compiled runner")
	}
	e := start(t, run.vm, env.Config())
	call := [][2]string{{":method", "POST"}, {":authority", "papers.mesh"}, {":path", "/mcp"},
		{"authorization", "Bearer " + env.ToolT}, {"content-type", "application/json"}}
	anonymous := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}}
	body := mcpCall(64 << 10)
	for i := range longRunCalls {
		if err := longRunRequest(e, call, body, 0); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if err := longRunRequest(e, anonymous, nil, 401); err != nil {
			t.Fatalf("request %d without a token: %v", i, err)
		}
	}
}

// longRunRequest sends one request (with body, if not nil) and checks
// the filter answered status, or let it through (0). A trap of the
// compiled filter (the emulator panics with it) is an error.
func longRunRequest(e *emu, headers [][2]string, body []byte, status int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the compiled filter trapped: %v", r)
		}
	}()
	id := e.host.InitializeHttpContext()
	defer e.host.CompleteHttpContext(id)
	e.host.CallOnRequestHeaders(id, headers, body == nil)
	if body != nil {
		e.host.CallOnRequestBody(id, body, true)
	}
	action, local := e.host.GetCurrentHttpStreamAction(id), e.host.GetSentLocalResponse(id)
	switch {
	case status == 0 && (action != types.ActionContinue || local != nil):
		return fmt.Errorf("not let through: action %v, answer %+v", action, local)
	case status != 0 && (local == nil || local.StatusCode != uint32(status)):
		return fmt.Errorf("answer %+v, want status %d", local, status)
	}
	return nil
}

// mcpCall is an allowed tools/call (ToolPolicies) of size bytes.
func mcpCall(size int) []byte {
	head := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_papers","arguments":{"limit":10,"query":"`
	tail := `"}}}`
	return []byte(head + strings.Repeat("a", size-len(head)-len(tail)) + tail)
}
