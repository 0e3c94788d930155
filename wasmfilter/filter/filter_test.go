package filter_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/wasmfilter/filter"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestHeaders: an allowed request reaches the upstream with MeshGuard's
// identity headers in place of any the caller sent, without the caller's
// delegation token, and in the caller's trace, under the decision's span;
// the response tells the caller the decision and the trace — with every
// part of the answer asked for (the configuration's answer: all).
func TestHeaders(t *testing.T) {
	env := filtertest.New(t)
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, withAnswer(t, env.Config(), "all"))
			o := e.send([][2]string{
				{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"},
				{"authorization", "Bearer " + env.OrchT}, {"traceparent", traceparent},
				{"x-meshguard-agent-id", "agent_forged"}, {"x-meshguard-tier", "privileged"}, {"x-meshguard-chain", "agent_forged"},
			})
			if o.action != types.ActionContinue || o.local != nil {
				t.Fatalf("not allowed: %v %+v", o.action, o.local)
			}
			want := map[string]string{
				engine.HeaderAgentID: env.Orch.ID, engine.HeaderAgentName: "orchestrator", engine.HeaderTier: "trusted",
				engine.HeaderChain: env.Orch.ID, "authorization": "Bearer " + env.OrchT,
			}
			for k, v := range want {
				if o.up[k] != v {
					t.Errorf("upstream %s = %q, want %q", k, o.up[k], v)
				}
			}
			if !strings.HasPrefix(o.up[engine.HeaderDecisionID], "dec_") {
				t.Errorf("decision id %q", o.up[engine.HeaderDecisionID])
			}
			if o.up["traceparent"] != traceparent {
				t.Errorf("upstream traceparent %q: want the caller's, untouched", o.up["traceparent"])
			}

			// The caller's own delegation token does not travel upstream.
			o = e.send([][2]string{
				{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/plan"},
				{"authorization", "Bearer " + env.MailT}, {"x-meshguard-delegation", delegationOf(t, env)},
			})
			if o.action != types.ActionContinue || o.up[engine.HeaderDelegation] != "" || o.up[engine.HeaderChain] != env.Orch.ID+","+env.Mail.ID {
				t.Errorf("delegated request: action %v, delegation %q, chain %q", o.action, o.up[engine.HeaderDelegation], o.up[engine.HeaderChain])
			}

			e.host.CallOnResponseHeaders(o.id, [][2]string{{":status", "200"}}, true)
			resp := e.host.GetCurrentResponseHeaders(o.id)
			if header(resp, engine.HeaderDecision) != "allow" || len(header(resp, engine.HeaderTraceID)) != 32 {
				t.Errorf("response headers %v", resp)
			}
			// Without a traceparent, the upstream joins the trace the
			// decision started, the one its audit record and the
			// response name.
			if tp := strings.Split(o.up["traceparent"], "-"); len(tp) != 4 || tp[1] != header(resp, engine.HeaderTraceID) {
				t.Errorf("upstream traceparent %q; the decision's trace is %s", o.up["traceparent"], header(resp, engine.HeaderTraceID))
			}

			// A denial carries the same headers, and the deny body.
			o = e.send([][2]string{{":method", "GET"}, {":authority", "vault.mesh"}, {":path", "/"}, {"authorization", "Bearer " + env.MailT}, {"traceparent", traceparent}})
			if o.local == nil || o.local.StatusCode != 403 || header(o.local.Headers, engine.HeaderDecision) != "deny" ||
				header(o.local.Headers, engine.HeaderTraceID) != "4bf92f3577b34da6a3ce929d0e0e4736" || header(o.local.Headers, "content-type") != "application/json" {
				t.Fatalf("denial %+v", o.local)
			}
		})
	}
}

// TestOtherSpellingsOfMeshGuardHeaders: CGI-style upstreams read
// X_MeshGuard_Agent_Id as X-MeshGuard-Agent-Id, so an allowed request
// loses every MeshGuard header spelled with '_', as the gateway and
// ext_authz remove them: no forged identity stands beside MeshGuard's.
func TestOtherSpellingsOfMeshGuardHeaders(t *testing.T) {
	env := filtertest.New(t)
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			o := e.send([][2]string{
				{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"},
				{"authorization", "Bearer " + env.OrchT},
				{"x_meshguard_agent_id", "agent_forged"}, {"x-meshguard_tier", "privileged"}, {"x_other", "kept"},
			})
			if o.action != types.ActionContinue || o.local != nil {
				t.Fatalf("not allowed: %v %+v", o.action, o.local)
			}
			for _, name := range []string{"x_meshguard_agent_id", "x-meshguard_tier"} {
				if v, ok := o.up[name]; ok {
					t.Errorf("upstream %s = %q, want it removed", name, v)
				}
			}
			if o.up["x_other"] != "kept" || o.up[engine.HeaderAgentID] != env.Orch.ID {
				t.Errorf("upstream headers %v", o.up)
			}
		})
	}
}

// delegationOf returns the Env's orchestrator → emailer delegation token,
// from the table.
func delegationOf(t *testing.T, env *filtertest.Env) string {
	for _, c := range env.Cases() {
		if c.Name == "delegated read" {
			return header(c.Headers, "x-meshguard-delegation")
		}
	}
	t.Fatal("no delegated case")
	return ""
}

// TestConfigurationUpdate: a new configuration (an agent revoked, here) is
// a new plugin context on the same VM, and decides from its first request;
// a configuration that does not parse or compile is refused whole, with a
// logged reason, and leaves no plugin to serve requests.
func TestConfigurationUpdate(t *testing.T) {
	env := filtertest.New(t)
	req := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"}, {"authorization", "Bearer " + env.OrchT}}
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			before := start(t, run.vm, env.Config())
			if o := before.send(req); o.action != types.ActionContinue {
				t.Fatalf("before the revocation: %v %+v", o.action, o.local)
			}
			before.stop()
			env := filtertest.New(t) // a fresh MeshGuard per run: the revocation is this run's
			env.F.Revoke(t, env.Orch.ID)
			after := start(t, run.vm, env.Generate(t))
			defer after.stop()
			if after.status != types.OnPluginStartStatusOK {
				t.Fatal("the new configuration was refused")
			}
			o := after.send([][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"}, {"authorization", "Bearer " + env.OrchT}})
			if o.local == nil || o.local.StatusCode != 401 || !strings.Contains(string(o.local.Data), "agent_revoked") {
				t.Fatalf("after the revocation: %+v", o.local)
			}

			for name, bad := range map[string]string{
				"not JSON":      `{"version":1,`,
				"wrong version": `{"version":7}`,
				"bad JWKS":      strings.Replace(string(env.Config()), `"kty":"OKP"`, `"kty":"RSA"`, 1),
			} {
				after.stop()
				refused := start(t, run.vm, []byte(bad))
				if refused.status != types.OnPluginStartStatusFailed {
					t.Errorf("%s: the configuration was accepted", name)
				}
				logs := strings.Join(refused.host.GetCriticalLogs(), "\n")
				if !strings.Contains(logs, "refusing the plugin configuration") {
					t.Errorf("%s: critical logs %q", name, logs)
				}
				refused.stop()
			}
		})
	}
}

// testConfig is the Env's configuration with small audit bounds.
// wasmRecordsStored is how many of the newest 100 records MeshGuard
// stored came from a wasm filter.
func wasmRecordsStored(t *testing.T, env *filtertest.Env) int {
	t.Helper()
	page, err := env.F.Store.QueryAudit(context.Background(), store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range page.Records {
		if r.Source == "wasm" {
			n++
		}
	}
	return n
}

func testConfig(t *testing.T, env *filtertest.Env, batch, buffered int) []byte {
	t.Helper()
	c, err := filterconfig.Parse(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	c.Audit = filterconfig.Audit{BatchSize: batch, MaxBuffered: buffered, FlushMs: 500}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func batchOf(t *testing.T, body []byte) filterprotocol.AuditBatch {
	t.Helper()
	var b filterprotocol.AuditBatch
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuditBatching: records leave at the tick, a batch at a time; a batch
// MeshGuard refuses stays and is sent again; a full buffer drops and
// counts, and the count reaches MeshGuard; MeshGuard stores what it is
// sent, sealed into its chain.
func TestAuditBatching(t *testing.T) {
	for _, run := range isolated(t) {
		t.Run(run.name, func(t *testing.T) {
			env := filtertest.New(t) // a store of its own: the records stored are this run's
			api := env.API(t)
			allow := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"}, {"authorization", "Bearer " + env.OrchT}}
			deny := [][2]string{{":method", "GET"}, {":authority", "vault.mesh"}, {":path", "/"}, {"authorization", "Bearer " + env.MailT}}
			e := start(t, run.vm, testConfig(t, env, 3, 5))
			if e.host.GetTickPeriod() != 500 {
				t.Errorf("tick period %d ms, want the configured 500", e.host.GetTickPeriod())
			}
			for _, req := range [][][2]string{allow, deny, allow, allow} {
				if o := e.send(req); len(e.callouts(o.id)) != 0 {
					t.Fatal("a request made a call: its answer would be lost if the request ended first")
				}
			}
			if n := len(e.rootCallouts()); n != 0 {
				t.Fatalf("%d calls before the tick", n)
			}
			e.host.Tick()
			calls := e.rootCallouts()
			if len(calls) != 1 || header(calls[0].Headers, ":path") != filterprotocol.AuditPath || calls[0].Upstream != "meshguard_http" {
				t.Fatalf("calls %+v", calls)
			}
			b := batchOf(t, calls[0].Body)
			if len(b.Records) != 3 || b.Dropped != 0 || b.Records[1].Decision != "deny" || b.Records[1].Reason != engine.ReasonTierBelowMinimum ||
				b.Records[0].Source != "wasm" || b.Records[0].AgentID != env.Orch.ID || b.Records[0].SourceAddress != "10.1.2.3" {
				t.Fatalf("batch %+v", b)
			}
			// MeshGuard is down: the batch stays, and new records queue
			// behind it up to the bound (5); the rest are counted.
			e.answered[1]++
			e.reply(calls[0].CalloutID, 503, nil)
			for range 3 {
				e.send(allow)
			}
			e.host.Tick()
			calls = e.rootCallouts()
			if len(calls) != 1 {
				t.Fatalf("%d calls after the tick", len(calls))
			}
			b = batchOf(t, calls[0].Body)
			if len(b.Records) != 3 || b.Dropped != 2 {
				t.Fatalf("retry: %d records, %d dropped; want 3 and 2", len(b.Records), b.Dropped)
			}
			// MeshGuard is back: the real API takes the batches.
			e.answer(1, api.Client(), api.URL)
			e.host.Tick()
			e.answer(1, api.Client(), api.URL)
			if n := len(e.host.GetCalloutAttributesFromContext(1)); n != 3 {
				t.Fatalf("%d batches sent in all, want 3 (refused, resent, rest)", n)
			}
			if stored := wasmRecordsStored(t, env); stored != 5 {
				t.Fatalf("%d wasm records stored, want the 5 not dropped", stored)
			}
			if n, err := e.host.GetCounterMetric("meshguard.wasm.audit_dropped"); err != nil || n != 2 {
				t.Errorf("audit_dropped counter %d, %v", n, err)
			}
		})
	}
}

// TestHostileRequestsNeverTrap: random and oversized headers, in the
// compiled filter too, are answered (allowed, or denied with a body) and
// never crash the VM: a trap in Envoy is an outage.
func TestHostileRequestsNeverTrap(t *testing.T) {
	env := filtertest.New(t)
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"", "Bearer ", "a.b.c", "\x00", "\xff\xfe", "%", "/../", ",", "{", strings.Repeat("x", 40<<10), env.OrchT, "x-meshguard-action", ":path", "traceparent", "00-zz"}
	names := []string{"authorization", "x-meshguard-action", "x-meshguard-resource", "x-meshguard-context", "x-meshguard-delegation", "traceparent", ":path", ":method", ":authority", "x-other"}
	pick := func() string { return pieces[rng.IntN(len(pieces))] + pieces[rng.IntN(len(pieces))] }
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			for range 200 {
				var hs [][2]string
				for range rng.IntN(12) {
					hs = append(hs, [2]string{names[rng.IntN(len(names))], pick()})
				}
				o := e.send(hs)
				switch {
				case o.local != nil && (o.local.StatusCode < 400 || !json.Valid(o.local.Data)):
					t.Fatalf("headers %q: answer %d %q", hs, o.local.StatusCode, o.local.Data)
				case o.local == nil && o.action == types.ActionPause && len(e.callouts(o.id)) == 0:
					t.Fatalf("headers %q: paused with nothing pending", hs)
				}
			}
			many := make([][2]string, 300)
			for i := range many {
				many[i] = [2]string{"x-h", "v"}
			}
			if o := e.send(append([][2]string{{":method", "GET"}, {":path", "/"}}, many...)); o.local == nil || o.local.StatusCode != 400 {
				t.Fatalf("300 headers: %+v", o.local)
			}
		})
	}
}

// TestFetchedConfiguration: a filter given only a source (an Istio
// WasmPlugin's pluginConfig) refuses requests until it has fetched its
// configuration from MeshGuard, then decides with it, refreshes it when the
// refresh period has passed, and calls MeshGuard through the source's
// cluster, not the one the fetched configuration names.
func TestFetchedConfiguration(t *testing.T) {
	const cluster = "outbound|3100||meshguard.meshguard-system.svc.cluster.local"
	source := []byte(`{"version":1,"source":{"cluster":"` + cluster + `","token":"` + filtertest.FilterCredential + `","refreshMs":1000}}`)
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			env := filtertest.New(t) // its own MeshGuard: the run revokes an agent
			api := env.API(t)
			req := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"}, {"authorization", "Bearer " + env.OrchT}}
			e := start(t, run.vm, source)
			if e.status != types.OnPluginStartStatusOK {
				t.Fatal("a source configuration was refused")
			}
			calls := e.rootCallouts()
			if len(calls) != 1 || calls[0].Upstream != cluster || header(calls[0].Headers, ":method") != "GET" || header(calls[0].Headers, ":path") != filterprotocol.ConfigPath {
				t.Fatalf("start-up calls %+v", calls)
			}
			if o := e.send(req); o.local == nil || o.local.StatusCode != 503 {
				t.Fatalf("before the configuration came: %+v", o.local)
			}
			e.answer(proxytest.PluginContextID, api.Client(), api.URL)
			if o := e.send(req); o.action != types.ActionContinue {
				t.Fatalf("with the fetched configuration: %+v", o.local)
			}
			env.F.Revoke(t, env.Orch.ID)
			for range 3 {
				e.host.Tick()
			}
			if n := len(e.rootCallouts()); n != 1 { // the audit batch; no fetch before 1000 ms
				t.Fatalf("%d calls after 750 ms", n)
			}
			if c := e.rootCallouts()[0]; c.Upstream != cluster || header(c.Headers, ":path") != filterprotocol.AuditPath {
				t.Fatalf("the audit batch went to %s %s", c.Upstream, header(c.Headers, ":path"))
			}
			e.host.Tick()
			refresh := e.rootCallouts()
			if n := len(refresh); n != 2 || header(refresh[1].Headers, "if-none-match") == "" {
				t.Fatalf("the refresh (%d calls) does not say which revision it has: %+v", n, refresh)
			}
			e.answer(proxytest.PluginContextID, api.Client(), api.URL)
			o := e.send(req)
			if o.local == nil || o.local.StatusCode != 401 || !strings.Contains(string(o.local.Data), "agent_revoked") {
				t.Fatalf("after the refresh: %+v", o.local)
			}
			// A refresh MeshGuard cannot answer keeps the configuration.
			for range 4 {
				e.host.Tick()
			}
			for _, c := range e.rootCallouts() {
				e.answered[proxytest.PluginContextID]++
				e.reply(c.CalloutID, 503, nil)
			}
			if o := e.send(req); o.local == nil || o.local.StatusCode != 401 {
				t.Fatalf("after a failed refresh: %+v", o.local)
			}
		})
	}
	bad := start(t, filter.NewVM(), []byte(`{"version":1,"source":{"cluster":"c","token":"t"},"agents":[]}`))
	if bad.status != types.OnPluginStartStatusFailed {
		t.Fatal("a source configuration carrying more was accepted")
	}
}

// TestCachedTokenExpires: a token verified once is cached, but never past
// its exp: the same token after it expired is refused.
func TestCachedTokenExpires(t *testing.T) {
	env := filtertest.New(t)
	// 10 s, then 45 s on: past exp and its 30 s leeway, but within the
	// cache's own one-minute bound, so only exp can turn it away.
	short, _, err := env.F.Issuer.Issue(env.Orch, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"}, {"authorization", "Bearer " + short}}
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			for range 2 { // verified, then from the cache
				if o := e.send(req); o.action != types.ActionContinue {
					t.Fatalf("a fresh token: %+v", o.local)
				}
			}
			e.at(filtertest.Now.Add(45 * time.Second))
			o := e.send(req)
			if o.local == nil || o.local.StatusCode != 401 || !strings.Contains(string(o.local.Data), "expired") {
				t.Fatalf("an expired token: %+v", o.local)
			}
		})
	}
}

// TestRecordsOutliveTheConfiguration: records belong to the VM, not to the
// configuration that made them. A retired configuration with a batch on
// its way waits for the answer; one without lets go at once, and the next
// configuration ships what it left. A batch MeshGuard refuses as bad is
// dropped and counted, not retried in front of every later record.
func TestRecordsOutliveTheConfiguration(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	vm := filter.NewVM()
	req := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"}, {"authorization", "Bearer " + env.OrchT}}

	first := start(t, vm, env.Config())
	first.send(req)
	first.host.Tick() // a batch of one on its way
	if first.host.FinishVM() {
		t.Fatal("retired with its batch unanswered")
	}
	first.send(req) // still decided while it waits
	first.answer(proxytest.PluginContextID, api.Client(), api.URL)
	first.stop()

	second := start(t, vm, env.Config())
	if !second.host.FinishVM() {
		t.Fatal("a configuration with nothing on its way was kept")
	}
	second.stop()

	third := start(t, vm, env.Config())
	third.host.Tick()
	calls := third.rootCallouts()
	if len(calls) != 1 || len(batchOf(t, calls[0].Body).Records) != 1 {
		t.Fatalf("the record the first configuration left: calls %+v", calls)
	}
	third.answered[proxytest.PluginContextID]++
	third.reply(calls[0].CalloutID, 400, []byte(`{"error":"bad_request"}`))
	third.send(req)
	third.host.Tick()
	calls = third.rootCallouts()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	if b := batchOf(t, calls[0].Body); len(b.Records) != 1 || b.Dropped != 1 {
		t.Fatalf("after a refused batch: %d records, %d dropped; want 1 and 1", len(b.Records), b.Dropped)
	}
	third.answer(proxytest.PluginContextID, api.Client(), api.URL)
	page, err := env.F.Store.QueryAudit(context.Background(), store.AuditFilter{AgentID: env.Orch.ID})
	if err != nil || len(page.Records) != 2 {
		t.Fatalf("%d records stored, %v; want 2", len(page.Records), err)
	}
}

// TestDefaultAnswer: with the configuration's answer unset, an allowed
// request reaches the upstream with the agent id alone of MeshGuard's
// identity headers — the caller's x-meshguard-agent-name, -tier, -chain and
// -decision-id removed, not passed on — and the response carries no
// decision headers; a denial still does.
func TestDefaultAnswer(t *testing.T) {
	env := filtertest.New(t)
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			o := e.send([][2]string{
				{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"},
				{"authorization", "Bearer " + env.OrchT},
				{"x-meshguard-agent-name", "admin-bot"}, {"x-meshguard-tier", "privileged"},
				{"x-meshguard-chain", "agent_forged"}, {"x-meshguard-decision-id", "dec_forged"},
			})
			if o.action != types.ActionContinue || o.local != nil {
				t.Fatalf("not allowed: %v %+v", o.action, o.local)
			}
			for k, v := range o.up {
				if strings.HasPrefix(k, "x-meshguard-") && (k != engine.HeaderAgentID || v != env.Orch.ID) {
					t.Errorf("upstream %s = %q", k, v)
				}
			}
			if o.up[engine.HeaderAgentID] != env.Orch.ID {
				t.Errorf("upstream agent id %q", o.up[engine.HeaderAgentID])
			}
			e.host.CallOnResponseHeaders(o.id, [][2]string{{":status", "200"}}, true)
			if resp := e.host.GetCurrentResponseHeaders(o.id); header(resp, engine.HeaderDecision) != "" || header(resp, engine.HeaderTraceID) != "" {
				t.Errorf("response headers %v", resp)
			}
			o = e.send([][2]string{{":method", "GET"}, {":authority", "vault.mesh"}, {":path", "/"}, {"authorization", "Bearer " + env.MailT}})
			if o.local == nil || o.local.StatusCode != 403 || header(o.local.Headers, engine.HeaderDecision) != "deny" || len(header(o.local.Headers, engine.HeaderTraceID)) != 32 {
				t.Fatalf("denial %+v", o.local)
			}
		})
	}
}

// withAnswer is cfg with its answer set (ANSWER_EXTRAS's list).
func withAnswer(t *testing.T, cfg []byte, answer string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		t.Fatal(err)
	}
	m["answer"] = answer
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
