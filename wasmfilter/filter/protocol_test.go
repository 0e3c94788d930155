package filter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
)

// sendBody makes one request whose body follows its headers, in two
// chunks and an end of stream, as Envoy delivers a body. early says the
// filter answered before the end of the stream.
func (e *emu) sendBody(headers [][2]string, body []byte) (o outcome, early bool) {
	e.t.Helper()
	id := e.host.InitializeHttpContext()
	o.id = id
	if a := e.host.CallOnRequestHeaders(id, headers, false); a != types.ActionPause {
		e.t.Fatalf("decided at headers (action %v, answer %+v): a protocol route waits for the body", a, e.host.GetSentLocalResponse(id))
	}
	half := len(body) / 2
	for _, chunk := range [][]byte{body[:half], body[half:]} {
		e.host.CallOnRequestBody(id, chunk, false)
		if e.host.GetSentLocalResponse(id) != nil {
			early = true
			break
		}
	}
	if !early {
		e.host.CallOnRequestBody(id, nil, true)
	}
	o.action = e.host.GetCurrentHttpStreamAction(id)
	o.local = e.host.GetSentLocalResponse(id)
	o.up = e.upstream(id)
	return o, early
}

// rpcView is a denial as its client reads it: the JSON-RPC error (for a
// JSON-RPC POST) or the plain deny body, but for its ids.
type rpcView struct {
	Status                 int
	JSONRPC, ID            string
	Code                   int
	Error, Reason, Message string
	Action, Policy, Rule   string
}

func rpcDenial(t *testing.T, status int, body []byte) rpcView {
	t.Helper()
	type deny struct{ Error, Reason, Message, Action, Policy, Rule string }
	var b struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("deny body %q: %v", body, err)
	}
	v := rpcView{Status: status, JSONRPC: b.JSONRPC, ID: string(b.ID)}
	var d deny
	if b.JSONRPC != "" {
		var e struct {
			Code    int
			Message string
			Data    deny
		}
		if err := json.Unmarshal(b.Error, &e); err != nil {
			t.Fatalf("JSON-RPC error %q: %v", b.Error, err)
		}
		v.Code, d = e.Code, e.Data
	} else if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	v.Error, v.Reason, v.Message, v.Action, v.Policy, v.Rule = d.Error, d.Reason, d.Message, d.Action, d.Policy, d.Rule
	return v
}

// TestProtocolDecisionsMatchTheServer: MCP tool calls and A2A messages
// (filtertest.ProtocolCases), sent to the filter — natively and compiled —
// with their bodies after their headers, are decided on the whole body as
// MeshGuard's engine decides them when ext_authz hands it the body with
// the route context of MeshGuard's xDS: the same status, the same denial,
// a JSON-RPC error for a JSON-RPC POST, sent by the filter with
// content-type application/json, the same identity upstream. A body over
// the bound is refused before its end. The A2A hop is deferred with its
// body, and MeshGuard's real HTTP API decides it on that body.
func TestProtocolDecisionsMatchTheServer(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	ctx := context.Background()
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			if e.status != types.OnPluginStartStatusOK {
				t.Fatal("the generated configuration was refused")
			}
			for _, c := range env.ProtocolCases() {
				t.Run(c.Name, func(t *testing.T) {
					sr, bad := env.ServerRequest(&c)
					if bad != "" {
						t.Fatal(bad)
					}
					d, err := env.F.Engine.Check(ctx, &sr)
					if err != nil {
						t.Fatal(err)
					}
					if d.Status != c.Status || d.Reason != c.Reason || d.Action != c.Action {
						t.Fatalf("the server decided %d %s %q; the table says %d %s %q", d.Status, d.Reason, d.Action, c.Status, c.Reason, c.Action)
					}
					want := filterprotocol.NewVerdict(&d)

					var o outcome
					var early bool
					if c.HasBody() {
						o, early = e.sendBody(c.HeaderMap(), c.Body)
					} else {
						o = e.send(c.HeaderMap())
					}
					if over := len(c.Body) > agentproto.MaxBody; early != over {
						t.Fatalf("answered before the end of the body: %v; the body is over the bound: %v", early, over)
					}
					calls := e.callouts(o.id)
					if c.Defer != (len(calls) == 1) {
						t.Fatalf("%d calls to MeshGuard; deferring: %v", len(calls), c.Defer)
					}
					if c.Defer {
						var dc filterprotocol.DeferredCheck
						if err := json.Unmarshal(calls[0].Body, &dc); err != nil {
							t.Fatal(err)
						}
						if dc.RouteProtocol != sr.RouteProtocol || dc.RouteService != sr.RouteService || !bytes.Equal(dc.Body, c.Body) {
							t.Fatalf("deferred with protocol %q service %q body %q; want %q %q %q", dc.RouteProtocol, dc.RouteService, dc.Body, sr.RouteProtocol, sr.RouteService, c.Body)
						}
						e.answer(o.id, api.Client(), api.URL)
						o.action, o.local, o.up = e.host.GetCurrentHttpStreamAction(o.id), e.host.GetSentLocalResponse(o.id), e.upstream(o.id)
					}
					if !want.Allowed {
						if o.local == nil {
							t.Fatalf("not answered (action %v); the server denies %d %s", o.action, want.Status, d.Reason)
						}
						if ct := header(o.local.Headers, "content-type"); ct != "application/json" {
							t.Fatalf("content-type %q", ct)
						}
						w, g := rpcDenial(t, want.Status, []byte(want.Body)), rpcDenial(t, int(o.local.StatusCode), o.local.Data)
						if w != g || (c.Method == "POST") != (g.JSONRPC == "2.0") {
							t.Fatalf("the filter and the server disagree\nserver: %+v\nfilter: %+v", w, g)
						}
						return
					}
					up := map[string]string{}
					for _, kv := range want.UpstreamHeaders {
						up[kv[0]] = kv[1]
					}
					if o.local != nil || o.action != types.ActionContinue {
						t.Fatalf("not let through: action %v, answer %+v", o.action, o.local)
					}
					if w, g := allowed(up), allowed(o.up); w != g {
						t.Fatalf("the filter and the server disagree\nserver: %+v\nfilter: %+v", w, g)
					}
				})
			}
		})
	}
}

// TestOtherRoutesAreDecidedAtHeaders: a request to a route that declares
// no protocol is decided at its headers, its body never buffered.
func TestOtherRoutesAreDecidedAtHeaders(t *testing.T) {
	env := filtertest.New(t)
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			id := e.host.InitializeHttpContext()
			a := e.host.CallOnRequestHeaders(id, [][2]string{{":method", "POST"}, {":authority", "mail.mesh"}, {":path", "/outbox?to=team@example.com"},
				{"authorization", "Bearer " + env.MailT}}, false)
			if a != types.ActionContinue || e.host.GetSentLocalResponse(id) != nil {
				t.Fatalf("action %v, answer %+v: want the request let through at its headers", a, e.host.GetSentLocalResponse(id))
			}
			if a := e.host.CallOnRequestBody(id, []byte(`{"text":"hi"}`), true); a != types.ActionContinue {
				t.Fatalf("the body was held: %v", a)
			}
		})
	}
}

// TestTrailersEndNoProtocolCall: a call decided on its body that ends with
// trailers is refused (400) by the engine, a JSON-RPC error its client
// reads, and recorded (was: a 400 outside the engine, plain JSON, in no
// record) — not decided on what came before them nor let through
// undecided.
func TestTrailersEndNoProtocolCall(t *testing.T) {
	env := filtertest.New(t)
	for _, run := range isolated(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			id := e.host.InitializeHttpContext()
			hdrs := [][2]string{{":method", "POST"}, {":authority", "papers.mesh"}, {":path", "/mcp"}, {"authorization", "Bearer " + env.ToolT}, {"content-type", "application/json"}}
			if a := e.host.CallOnRequestHeaders(id, hdrs, false); a != types.ActionPause {
				t.Fatalf("headers: action %v", a)
			}
			if a := e.host.CallOnRequestBody(id, []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`), false); a != types.ActionPause {
				t.Fatalf("body: action %v", a)
			}
			e.host.CallOnRequestTrailers(id, [][2]string{{"x-end", "1"}})
			local := e.host.GetSentLocalResponse(id)
			if local == nil || local.StatusCode != 400 || header(local.Headers, "content-type") != "application/json" {
				t.Fatalf("answer %+v (action %v); want a 400", local, e.host.GetCurrentHttpStreamAction(id))
			}
			var b struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Error   struct {
					Data struct {
						Reason     string `json:"reason"`
						DecisionID string `json:"decision_id"`
					} `json:"data"`
				} `json:"error"`
			}
			if err := json.Unmarshal(local.Data, &b); err != nil || b.JSONRPC != "2.0" || b.Error.Data.Reason != engine.ReasonBadRequest || b.Error.Data.DecisionID == "" {
				t.Fatalf("answer %s (%v): want a JSON-RPC error with the decision", local.Data, err)
			}
			e.host.Tick()
			found := false
			for _, c := range e.rootCallouts() {
				for _, r := range batchOf(t, c.Body).Records {
					found = found || r.DecisionID == b.Error.Data.DecisionID && r.Decision == "deny"
				}
			}
			if !found {
				t.Fatalf("the refusal %s is in no record shipped", b.Error.Data.DecisionID)
			}
		})
	}
}
