package filter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
)

// benchConfig is the Env's configuration with the given token cache. The
// benchmarks never tick, so no batch leaves: records queue up to the
// default bound (10,000) and are then dropped and counted. Run at most that
// many requests (-benchtime 5000x) to measure the queueing path.
func benchConfig(b *testing.B, env *filtertest.Env, cache int) []byte {
	b.Helper()
	c, err := filterconfig.Parse(env.Config())
	if err != nil {
		b.Fatal(err)
	}
	c.TokenCacheEntries = cache
	out, err := json.Marshal(c)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkRequest is one allowed request through the filter, in the
// emulator: with its token verified before (cached), and with a token the
// cache does not hold (an Ed25519 verification each time). The baseline is
// the same decision by the server's engine, in process, and the native
// filter, measured in the same run: docs/performance.md reports the ratios.
func BenchmarkRequest(b *testing.B) {
	env := filtertest.New(b)
	// Two tokens of one agent, used in turn, miss a one-entry cache.
	other, _, err := env.F.Issuer.Issue(env.Orch, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	req := func(tok string) [][2]string {
		return [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + tok}}
	}
	b.Run("baseline=engine", func(b *testing.B) {
		// The server's engine over the same parts, without the audit
		// writer (whose cost is the store's): the decision alone.
		f := env.F
		eng, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer, Agents: f.Agents,
			Policies: f.Policies, Limiter: f.Limiter, Now: func() time.Time { return filtertest.Now }})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.Run("headers", func(b *testing.B) {
			for b.Loop() {
				r := engine.Request{Source: engine.SourceExtAuthzGRPC, Method: "GET", Host: "docs.mesh", Path: "/docs/readme", Token: env.OrchT, MinTier: trust.Verified}
				if d, err := eng.Check(ctx, &r); err != nil || !d.Allowed {
					b.Fatal(d.Reason, err)
				}
			}
		})
		b.Run("mcp-2KB", func(b *testing.B) {
			body := mcpCall(2 << 10)
			for b.Loop() {
				r := engine.Request{Source: engine.SourceExtAuthzGRPC, Method: "POST", Host: "papers.mesh", Path: "/mcp", Token: env.ToolT,
					RouteProtocol: agentproto.MCP, RouteService: "papers", Body: body}
				if d, err := eng.Check(ctx, &r); err != nil || !d.Allowed {
					b.Fatal(d.Reason, err)
				}
			}
		})
	})
	for _, run := range runners(b) {
		b.Run(run.name+"/no-token", func(b *testing.B) {
			e := start(b, run.vm, benchConfig(b, env, 0))
			defer e.stop()
			defer reportCPU(b)()
			for b.Loop() {
				id := e.host.InitializeHttpContext()
				e.host.CallOnRequestHeaders(id, [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/"}}, true)
				e.host.CompleteHttpContext(id)
			}
		})
		b.Run(run.name+"/mcp-2KB", func(b *testing.B) {
			// An allowed tools/call of 2 KB (cached token), its body after
			// its headers: against run/cached, the cost of buffering,
			// parsing and deciding on the body.
			e := start(b, run.vm, benchConfig(b, env, 0))
			defer e.stop()
			hdrs := [][2]string{{":method", "POST"}, {":authority", "papers.mesh"}, {":path", "/mcp"}, {"authorization", "Bearer " + env.ToolT}, {"content-type", "application/json"}}
			body := mcpCall(2 << 10)
			defer reportCPU(b)()
			for b.Loop() {
				id := e.host.InitializeHttpContext()
				if a := e.host.CallOnRequestHeaders(id, hdrs, false); a != types.ActionPause {
					b.Fatalf("headers: action %v", a)
				}
				if a := e.host.CallOnRequestBody(id, body, true); a != types.ActionContinue {
					b.Fatalf("action %v: %+v", a, e.host.GetSentLocalResponse(id))
				}
				e.host.CompleteHttpContext(id)
			}
		})
		b.Run(run.name+"/cached-shipped", func(b *testing.B) {
			// As run/cached, with the audit queue shipped as in a proxy:
			// a tick every 100 requests (a batch; at the default 250 ms
			// flush, 400 requests a second per worker) whose batch
			// MeshGuard takes. Without it the queue holds every record
			// and the collector marks them all at each cycle.
			e := start(b, run.vm, benchConfig(b, env, 0))
			defer e.stop()
			i := 0
			defer reportCPU(b)()
			for b.Loop() {
				id := e.host.InitializeHttpContext()
				if a := e.host.CallOnRequestHeaders(id, req(env.OrchT), true); a != types.ActionContinue {
					b.Fatalf("action %v: %+v", a, e.host.GetSentLocalResponse(id))
				}
				e.host.CompleteHttpContext(id)
				if i++; i%100 == 0 {
					e.host.Tick()
					for _, c := range e.rootCallouts() {
						e.answered[proxytest.PluginContextID]++
						e.reply(c.CalloutID, 200, nil)
					}
				}
			}
		})
		for _, tc := range []struct {
			name   string
			cache  int
			tokens []string
		}{{"cached", 0, []string{env.OrchT}}, {"uncached-EdDSA", 1, []string{env.OrchT, other}}} {
			b.Run(run.name+"/"+tc.name, func(b *testing.B) {
				e := start(b, run.vm, benchConfig(b, env, tc.cache))
				defer e.stop()
				i := 0
				defer reportCPU(b)()
				for b.Loop() {
					id := e.host.InitializeHttpContext()
					if a := e.host.CallOnRequestHeaders(id, req(tc.tokens[i%len(tc.tokens)]), true); a != types.ActionContinue {
						b.Fatalf("action %v: %+v", a, e.host.GetSentLocalResponse(id))
					}
					e.host.CompleteHttpContext(id)
					i++
				}
			})
		}
	}
}

// BenchmarkPluginStart is the cost of a new configuration (every agent,
// key or policy change makes one): parsing and compiling it, with the
// Env's agents and with 1,000 (the first page of a store listing). BenchmarkVMStart adds compiling and
// starting the module, once per Envoy worker; it reports the module's size.
func BenchmarkPluginStart(b *testing.B) {
	env := filtertest.New(b)
	small := env.Config()
	for i := range 1000 {
		if _, err := env.F.Store.CreateAgent(context.Background(), identity.Agent{
			Name: fmt.Sprintf("agent-%04d", i), TrustTier: trust.Verified, Tags: []string{"emailer", "bulk"},
			Hosts: []string{fmt.Sprintf("agent-%04d.mesh", i)}, Status: identity.StatusActive,
		}); err != nil {
			b.Fatal(err)
		}
	}
	large := env.Generate(b)
	for _, run := range runners(b) {
		for name, cfg := range map[string][]byte{"agents=5": small, "agents=1000": large} {
			b.Run(run.name+"/"+name, func(b *testing.B) {
				for b.Loop() {
					e := start(b, run.vm, cfg)
					if e.status != types.OnPluginStartStatusOK {
						b.Fatal("refused")
					}
					e.stop()
				}
				b.ReportMetric(float64(len(cfg)), "config-bytes")
			})
		}
	}
}

func BenchmarkVMStart(b *testing.B) {
	code, err := os.ReadFile(wasmPath)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		vm, err := proxytest.NewWasmVMContext(code)
		if err != nil {
			b.Fatal(err)
		}
		_ = vm.Close()
	}
	b.ReportMetric(float64(len(code)), "wasm-bytes")
}
