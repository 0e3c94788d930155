package filter_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/store"
)

// withHS256 is the environment's configuration saying MeshGuard also takes
// HS256 tokens (JWT_SECRET), whose secret the filter lacks: the filter
// defers every request carrying one, forged or not.
func withHS256(t *testing.T, env *filtertest.Env) []byte {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(env.Config(), &doc); err != nil {
		t.Fatal(err)
	}
	doc["hs256"] = json.RawMessage("true")
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeferredRequestsHoldTheirBody: a request the filter defers to
// MeshGuard at its headers (a delegation hop, a rate-limited policy, an
// HS256 token) whose body follows the headers is held, body and trailers
// too, until MeshGuard's verdict. Envoy continues a request whose body (or
// trailers) callback answers Continue even though its headers callback
// paused it, so a filter that lets the body through while it waits sends
// the request upstream undecided — past the rate limit, with a forged
// HS256 token, with the caller's own identity headers — before MeshGuard's
// denial arrives. Natively and compiled; MeshGuard is its real HTTP API.
func TestDeferredRequestsHoldTheirBody(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	var hop, limited filtertest.Case
	for _, c := range env.Cases() {
		switch c.Name {
		case "task handed to an agent":
			hop = c
		case "rate-limited policy":
			limited = c
		}
	}
	if hop.Name == "" || limited.Name == "" {
		t.Fatal("the table has no delegation hop or rate-limited case")
	}
	forged := filtertest.Case{Name: "a forged HS256 token", Method: "POST", Host: "mail.mesh", Path: "/outbox?to=team@example.com",
		Headers: [][2]string{{"authorization", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudF9ldmUifQ.c2lnbmF0dXJl"}, {engine.HeaderAgentID, "agent_forged"}}}
	type tail int
	const (
		bodyEnds tail = iota
		trailersEnd
	)
	cases := []struct {
		name   string
		c      filtertest.Case
		hs256  bool
		before int // requests of the same case answered first
		tail   tail
		status int // MeshGuard's verdict: 200 allows
	}{
		{"a delegation hop, allowed", hop, false, 0, bodyEnds, 200},
		{"a delegation hop ending with trailers, allowed", hop, false, 0, trailersEnd, 200},
		{"over the rate limit", limited, false, 5, bodyEnds, 429},
		{"a forged HS256 token", forged, true, 0, bodyEnds, 401},
		{"a forged HS256 token, trailers", forged, true, 0, trailersEnd, 401},
	}
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					config := env.Config()
					if tc.hs256 {
						config = withHS256(t, env)
					}
					e := start(t, run.vm, config)
					if e.status != types.OnPluginStartStatusOK {
						t.Fatal("the configuration was refused")
					}
					for range tc.before {
						o := e.send(tc.c.HeaderMap())
						e.answer(o.id, api.Client(), api.URL)
					}
					id := e.host.InitializeHttpContext()
					if a := e.host.CallOnRequestHeaders(id, tc.c.HeaderMap(), false); a != types.ActionPause {
						t.Fatalf("headers: action %v; want the request paused for MeshGuard", a)
					}
					if n := len(e.callouts(id)); n != 1 {
						t.Fatalf("%d calls to MeshGuard, want 1", n)
					}
					steps := []struct {
						name string
						call func() types.Action
					}{
						{"the first body chunk", func() types.Action { return e.host.CallOnRequestBody(id, []byte(`{"task":`), false) }},
						{"the last body chunk", func() types.Action {
							return e.host.CallOnRequestBody(id, []byte(`"summarise"}`), tc.tail == bodyEnds)
						}},
					}
					if tc.tail == trailersEnd {
						steps = append(steps, struct {
							name string
							call func() types.Action
						}{"the trailers", func() types.Action { return e.host.CallOnRequestTrailers(id, [][2]string{{"x-end", "1"}}) }})
					}
					for _, s := range steps {
						if a := s.call(); a != types.ActionPause {
							t.Fatalf("%s, before MeshGuard's verdict: action %v; Envoy would send the request upstream undecided", s.name, a)
						}
					}
					e.answer(id, api.Client(), api.URL)
					local := e.host.GetSentLocalResponse(id)
					if tc.status != 200 {
						if local == nil || int(local.StatusCode) != tc.status {
							t.Fatalf("answer %+v (action %v); MeshGuard's verdict is %d", local, e.host.GetCurrentHttpStreamAction(id), tc.status)
						}
						return
					}
					up := e.upstream(id)
					if local != nil || e.host.GetCurrentHttpStreamAction(id) != types.ActionContinue || up[engine.HeaderAgentID] != env.Orch.ID {
						t.Fatalf("answer %+v, action %v, upstream %v: want the request resumed as the orchestrator", local, e.host.GetCurrentHttpStreamAction(id), up)
					}
				})
			}
		})
	}
}

// TestDeferredOversizedBodyIsDecided: a call whose body is over the bound,
// deferred because the filter cannot verify its token (HS256), is decided
// and recorded by MeshGuard — the filter hands on its first MaxBody+1
// bytes, as its own engine takes them — not refused unrecorded and
// answered 503 (was: MeshGuard refused a check whose body was over the
// bound before deciding it). The rest of the body waits with the request.
func TestDeferredOversizedBodyIsDecided(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	ctx := context.Background()
	body := filtertest.Oversized()
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, withHS256(t, env))
			before := records(ctx, t, env)
			id := e.host.InitializeHttpContext()
			hdrs := [][2]string{{":method", "POST"}, {":authority", "papers.mesh"}, {":path", "/mcp"}, {"content-type", "application/json"},
				{"authorization", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudF9ldmUifQ.c2lnbmF0dXJl"}}
			if a := e.host.CallOnRequestHeaders(id, hdrs, false); a != types.ActionPause {
				t.Fatalf("headers: action %v", a)
			}
			for i, chunk := range [][]byte{body[:len(body)/2], body[len(body)/2:], []byte("more")} {
				if a := e.host.CallOnRequestBody(id, chunk, i == 2); a != types.ActionPause || e.host.GetSentLocalResponse(id) != nil {
					t.Fatalf("chunk %d: action %v, answer %+v; want it held", i, a, e.host.GetSentLocalResponse(id))
				}
			}
			calls := e.callouts(id)
			if len(calls) != 1 {
				t.Fatalf("%d calls to MeshGuard, want 1", len(calls))
			}
			var dc filterprotocol.DeferredCheck
			if err := json.Unmarshal(calls[0].Body, &dc); err != nil {
				t.Fatal(err)
			}
			if len(dc.Body) != agentproto.MaxBody+1 {
				t.Fatalf("deferred with %d bytes of body, want MaxBody+1", len(dc.Body))
			}
			e.answer(id, api.Client(), api.URL)
			local := e.host.GetSentLocalResponse(id)
			if local == nil || local.StatusCode != 401 {
				t.Fatalf("answer %+v: want MeshGuard's 401 (the token is not one it takes)", local)
			}
			if after := records(ctx, t, env); after != before+1 {
				t.Fatalf("%d records after, %d before: want the denial recorded", after, before)
			}
		})
	}
}

// records is the number of records in the trail.
func records(ctx context.Context, t *testing.T, env *filtertest.Env) int {
	t.Helper()
	page, err := env.F.Store.QueryAudit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Records)
}
