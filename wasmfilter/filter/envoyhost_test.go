package filter_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/wasmfilter/filter"
)

// perRequest matches what differs between two runs of one request: the
// decision id, trace and span ids.
var perRequest = regexp.MustCompile(`dec_[0-9A-Za-z]+|\b[0-9a-f]{32}\b|\b[0-9a-f]{16}\b`)

// hostView is an outcome as two hosts must agree on it: the action, the
// local response (status, headers, body) and the upstream headers, with
// per-request ids masked and header order ignored.
type hostView struct {
	Action        types.Action
	Status        uint32
	Body          string
	Local, Up, Rs []string
}

func pairs(hs [][2]string) []string {
	out := make([]string, 0, len(hs))
	for _, kv := range hs {
		v := kv[1]
		if kv[0] == engine.HeaderDelegation {
			v = claims(v)
		}
		out = append(out, kv[0]+"="+perRequest.ReplaceAllString(v, "#"))
	}
	slices.Sort(out)
	return out
}

// claims is a delegation token MeshGuard mints for the upstream, but for
// what is new in each (its id, its trace, hence its signature).
func claims(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return tok
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err != nil || json.Unmarshal(payload, &m) != nil {
		return tok
	}
	delete(m, "jti")
	delete(m, "traceparent")
	out, _ := json.Marshal(m)
	return parts[0] + "." + string(out)
}

func viewOf(o outcome, resp [][2]string) hostView {
	v := hostView{Action: o.action, Rs: pairs(resp)}
	if o.local != nil {
		v.Status, v.Body, v.Local = o.local.StatusCode, perRequest.ReplaceAllString(string(o.local.Data), "#"), pairs(o.local.Headers)
		return v
	}
	up := make([][2]string, 0, len(o.up))
	for k, val := range o.up {
		up = append(up, [2]string{k, val})
	}
	v.Up = pairs(up)
	return v
}

// TestEnvoyHostMatchesEmulator: the compiled filter under wasmhost, the
// Envoy-shaped host the benchmarks measure, does what it does under the
// SDK's emulator, request for request: the Env's whole table (allows,
// cached allows, denials, no token, bad tokens, requests deferred to
// MeshGuard's real API and its answers handed back), then every protocol
// case (MCP and A2A bodies, buffered as Envoy buffers them), then the
// response headers of the allows. Both run with every part of the answer
// asked for, so the headers compared are all of them.
func TestEnvoyHostMatchesEmulator(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	config := withAnswer(t, env.Config(), "all")
	e := start(t, runners(t)[1].vm, config)
	h := startHost(t, compiledHost(t), config)
	if e.status != types.OnPluginStartStatusOK || !h.ok {
		t.Fatalf("configuration refused: emulator %v, wasmhost %v", e.status, h.ok)
	}
	type request struct {
		name    string
		headers [][2]string
		body    []byte
		deferTo bool
	}
	var table []request
	for _, c := range env.Cases() {
		table = append(table, request{c.Name, c.HeaderMap(), nil, c.Defer})
	}
	for _, c := range env.ProtocolCases() {
		table = append(table, request{"protocol/" + c.Name, c.HeaderMap(), c.Body, c.Defer})
	}
	first := env.Cases()[0]
	table = append(table, request{"cached allow", first.HeaderMap(), nil, false},
		request{"bad signature", append(first.HeaderMap()[:3:3], [2]string{"authorization", "Bearer " + env.OrchT[:len(env.OrchT)-4] + "AAAA"}), nil, false})
	for _, r := range table {
		t.Run(r.name, func(t *testing.T) {
			var want, got outcome
			if r.body != nil {
				want, _ = e.sendBody(r.headers, r.body)
				got, _ = h.sendBody(r.headers, r.body)
			} else {
				want, got = e.send(r.headers), h.send(r.headers)
			}
			ec, hc := e.callouts(want.id), h.callouts(got.id)
			if len(ec) != len(hc) || r.deferTo != (len(hc) == 1) {
				t.Fatalf("calls to MeshGuard: emulator %d, wasmhost %d; deferring: %v", len(ec), len(hc), r.deferTo)
			}
			for i := range ec {
				if ec[i].Upstream != hc[i].Upstream || !slices.Equal(pairs(ec[i].Headers), pairs(hc[i].Headers)) {
					t.Errorf("call: emulator %s %v, wasmhost %s %v", ec[i].Upstream, ec[i].Headers, hc[i].Upstream, hc[i].Headers)
				}
			}
			if len(hc) > 0 {
				e.answer(want.id, api.Client(), api.URL)
				h.answer(got.id, api.Client(), api.URL)
				want.action, want.local, want.up = e.host.GetCurrentHttpStreamAction(want.id), e.host.GetSentLocalResponse(want.id), e.upstream(want.id)
				got = h.outcome(h.streams[got.id])
			}
			var wantResp, gotResp [][2]string
			if want.local == nil && got.local == nil {
				e.host.CallOnResponseHeaders(want.id, [][2]string{{":status", "200"}}, true)
				wantResp = e.host.GetCurrentResponseHeaders(want.id)
				if _, err := h.streams[got.id].ResponseHeaders([][2]string{{":status", "200"}}, true); err != nil {
					t.Fatal(err)
				}
				gotResp = h.streams[got.id].ResponseHeadersNow()
			}
			if w, g := viewOf(want, wantResp), viewOf(got, gotResp); fmt.Sprint(w) != fmt.Sprint(g) {
				t.Fatalf("the hosts disagree\nemulator: %+v\nwasmhost: %+v", w, g)
			} else if (r.name == first.Name || r.name == "cached allow") && !slices.Contains(g.Rs, engine.HeaderDecision+"=allow") {
				t.Fatalf("an allow's response headers %v: the decision is not told", g.Rs)
			}
			h.done()
		})
	}
}

// TestEnvoyHostShipsAudit: under wasmhost as under the emulator, records
// leave at the tick through proxy_http_call, a batch at a time, to the
// same cluster and path; a batch MeshGuard refuses (503) stays and is sent
// again, a full buffer drops and counts; MeshGuard's real API takes what
// wasmhost ships. Each host has a VM of its own: the queue is the VM's.
// The emulator runs the filter natively here: a second compiled VM would
// cost a compile of the module (tens of seconds under -race), and
// TestAuditBatching already holds the compiled filter under the emulator
// to the same steps.
func TestEnvoyHostShipsAudit(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	config := testConfig(t, env, 3, 5)
	e := start(t, filter.NewVM(), config)
	h := startHost(t, compiledHost(t), config)
	if got, want := h.p.TickPeriod(), e.host.GetTickPeriod(); got != want || got != 500 {
		t.Fatalf("tick period: wasmhost %d, emulator %d, want 500", got, want)
	}
	allow := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"}, {"authorization", "Bearer " + env.OrchT}}
	deny := [][2]string{{":method", "GET"}, {":authority", "vault.mesh"}, {":path", "/"}, {"authorization", "Bearer " + env.MailT}}
	send := func(reqs ...[][2]string) {
		for _, r := range reqs {
			e.send(r)
			h.send(r)
		}
		h.done()
	}
	// batch ticks both hosts and compares the one call each makes.
	batch := func(step string, records int, dropped uint64) (emuCall uint32, hostCall uint32) {
		t.Helper()
		e.host.Tick()
		if err := h.p.Tick(); err != nil {
			t.Fatal(err)
		}
		ec, hc := e.rootCallouts(), h.callouts(h.p.ID())
		if len(ec) != 1 || len(hc) != 1 {
			t.Fatalf("%s: calls: emulator %d, wasmhost %d; want 1", step, len(ec), len(hc))
		}
		if hc[0].Upstream != "meshguard_http" || header(hc[0].Headers, ":path") != filterprotocol.AuditPath ||
			hc[0].Upstream != ec[0].Upstream || !slices.Equal(pairs(ec[0].Headers), pairs(hc[0].Headers)) {
			t.Fatalf("%s: call: emulator %s %v, wasmhost %s %v", step, ec[0].Upstream, ec[0].Headers, hc[0].Upstream, hc[0].Headers)
		}
		eb, hb := batchOf(t, ec[0].Body), batchOf(t, hc[0].Body)
		if len(hb.Records) != records || hb.Dropped != dropped || len(eb.Records) != records || eb.Dropped != dropped {
			t.Fatalf("%s: emulator %d records, %d dropped; wasmhost %d, %d; want %d, %d", step,
				len(eb.Records), eb.Dropped, len(hb.Records), hb.Dropped, records, dropped)
		}
		for i := range hb.Records {
			w, g := eb.Records[i], hb.Records[i]
			if w.Decision != g.Decision || w.Reason != g.Reason || w.Source != g.Source || w.AgentID != g.AgentID ||
				w.SourceAddress != g.SourceAddress || g.SourceAddress != "10.1.2.3" || w.Host != g.Host || w.Path != g.Path {
				t.Fatalf("%s: record %d: emulator %+v\nwasmhost %+v", step, i, w, g)
			}
		}
		return ec[0].CalloutID, hc[0].ID
	}
	send(allow, deny, allow, allow)
	ec, hc := batch("first", 3, 0)
	// MeshGuard is down: the batch stays; the queue fills to 5.
	e.answered[proxytest.PluginContextID]++
	e.reply(ec, 503, nil)
	h.reply(hc, 503, nil)
	send(allow, allow, allow)
	batch("retry", 3, 2)
	// MeshGuard is back: its real API takes both hosts' batches.
	e.answer(proxytest.PluginContextID, api.Client(), api.URL)
	h.answer(h.p.ID(), api.Client(), api.URL)
	batch("rest", 2, 0)
	e.answer(proxytest.PluginContextID, api.Client(), api.URL)
	h.answer(h.p.ID(), api.Client(), api.URL)
	if err := h.p.Tick(); err != nil {
		t.Fatal(err)
	}
	if n := len(h.vm.Callouts()); n != 0 {
		t.Fatalf("wasmhost: %d calls after every batch was taken", n)
	}
	if stored := wasmRecordsStored(t, env); stored != 10 {
		t.Fatalf("%d wasm records stored, want the 5 not dropped from each host", stored)
	}
	want, err := e.host.GetCounterMetric("meshguard.wasm.audit_dropped")
	if got, ok := h.vm.Metric("meshguard.wasm.audit_dropped"); err != nil || !ok || got != int64(want) || got != 2 {
		t.Errorf("audit_dropped: wasmhost %d (%v), emulator %d (%v); want 2", got, ok, want, err)
	}
}

// TestEnvoyHostPluginWaitsForItsBatch: a configuration retired while its
// batch is on its way answers proxy_on_done with false, so Envoy keeps its
// root context for the answer; the answer delivered, the filter calls
// proxy_done and the host deletes the context after that call. Retired with nothing on
// its way, it goes at once.
func TestEnvoyHostPluginWaitsForItsBatch(t *testing.T) {
	env := filtertest.New(t)
	allow := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"}, {"authorization", "Bearer " + env.OrchT}}
	for _, tc := range []struct {
		name     string
		inFlight bool
	}{{"a batch on its way", true}, {"nothing on its way", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHost(t, compiledHost(t), testConfig(t, env, 3, 5))
			h.send(allow)
			h.done()
			if tc.inFlight {
				if err := h.p.Tick(); err != nil {
					t.Fatal(err)
				}
			}
			calls := h.callouts(h.p.ID())
			if len(calls) != map[bool]int{true: 1, false: 0}[tc.inFlight] {
				t.Fatalf("%d calls", len(calls))
			}
			if err := h.p.Close(); err != nil {
				t.Fatal(err)
			}
			if h.p.Closed() == tc.inFlight {
				t.Fatalf("closed %v with a batch on its way %v", h.p.Closed(), tc.inFlight)
			}
			if !tc.inFlight {
				return
			}
			h.reply(calls[0].ID, 200, nil)
			if !h.p.Closed() {
				t.Fatal("still open after its batch's answer (no proxy_done)")
			}
		})
	}
}
