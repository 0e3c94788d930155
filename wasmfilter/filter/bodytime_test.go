package filter_test

import (
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/wasmfilter/filter"
)

// TestBodyIsDecidedWhenWhole: a call decided on its body is decided when
// its body is whole, as ext_authz and the gateway decide it, not at the
// time its first byte came: a token valid when the headers arrive and
// expired by the end of the body is refused (was: the filter decided at
// the request's start, so a caller holding its body open kept an expired
// token — or delegation, or a closed time window — working for as long as
// Envoy let the stream live). Native only: the filter measures the time
// since the headers on the VM's monotonic clock, which is Envoy's real one
// but a fake one under wazero (1 ms a reading); the test waits for the
// real clock to pass the token's expiry.
func TestBodyIsDecidedWhenWhole(t *testing.T) {
	env := filtertest.New(t)
	e := start(t, filter.NewVM(), env.Config())
	if e.status != types.OnPluginStartStatusOK {
		t.Fatal("the generated configuration was refused")
	}
	// The toolsmith's token expires an hour after filtertest.Now, and is
	// refused from its expiry plus the leeway on.
	refused := filtertest.Now.Add(time.Hour + identity.Leeway)
	const margin = 200 * time.Millisecond
	e.at(refused.Add(-margin))
	hdrs := [][2]string{{":method", "POST"}, {":authority", "papers.mesh"}, {":path", "/mcp"}, {"authorization", "Bearer " + env.ToolT}, {"content-type", "application/json"}}
	body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_papers","arguments":{"query":"agents"}}}`)

	// At the headers' time the call is allowed: the test asks the
	// question it means to.
	id := e.host.InitializeHttpContext()
	e.host.CallOnRequestHeaders(id, hdrs, false)
	if a := e.host.CallOnRequestBody(id, body, true); a != types.ActionContinue || e.host.GetSentLocalResponse(id) != nil {
		t.Fatalf("a whole body at once: action %v, answer %+v; want it allowed", a, e.host.GetSentLocalResponse(id))
	}

	id = e.host.InitializeHttpContext()
	sent := time.Now()
	if a := e.host.CallOnRequestHeaders(id, hdrs, false); a != types.ActionPause {
		t.Fatalf("headers: action %v", a)
	}
	e.host.CallOnRequestBody(id, body[:10], false)
	for time.Since(sent) <= 2*margin { // the real clock passes the expiry
		time.Sleep(margin / 4)
	}
	e.host.CallOnRequestBody(id, body[10:], true)
	local := e.host.GetSentLocalResponse(id)
	if local == nil || local.StatusCode != 401 {
		t.Fatalf("answer %+v (action %v): the token expired before the body was whole; want a 401", local, e.host.GetCurrentHttpStreamAction(id))
	}
}
