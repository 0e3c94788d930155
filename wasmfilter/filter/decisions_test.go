package filter_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/extauthz"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
)

// extAuthz serves MeshGuard's ext_authz gRPC API over env on 127.0.0.1.
func extAuthz(t *testing.T, env *filtertest.Env) authv3.AuthorizationClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	extauthz.NewServer(env.F.Engine, slog.New(slog.DiscardHandler)).Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// verdict is an outcome reduced to what both enforcement points must agree
// on: the status, the denial's body but for its ids, and who the upstream
// is told is calling.
type verdict struct {
	Status                                 int
	Error, Reason, Message, Policy, Action string
	Rule                                   string
	AgentID, AgentName, Tier, Chain        string
	Delegation                             bool
}

func denial(status int, body []byte) (verdict, error) {
	var b struct{ Error, Reason, Message, Policy, Rule, Action string }
	err := json.Unmarshal(body, &b)
	return verdict{Status: status, Error: b.Error, Reason: b.Reason, Message: b.Message, Policy: b.Policy, Rule: b.Rule, Action: b.Action}, err
}

func allowed(up map[string]string) verdict {
	return verdict{Status: 200, AgentID: up[engine.HeaderAgentID], AgentName: up[engine.HeaderAgentName], Tier: up[engine.HeaderTier],
		Chain: up[engine.HeaderChain], Delegation: up[engine.HeaderDelegation] != ""}
}

// viaExtAuthz is what ext_authz answers for c, given the route context
// MeshGuard's xDS puts on the route Envoy picks.
func viaExtAuthz(t *testing.T, client authv3.AuthorizationClient, env *filtertest.Env, c *filtertest.Case) verdict {
	t.Helper()
	hdrs := map[string]string{} // Envoy joins a repeated header's values with commas
	for _, kv := range c.Headers {
		if v, ok := hdrs[kv[0]]; ok {
			hdrs[kv[0]] = v + "," + kv[1]
		} else {
			hdrs[kv[0]] = kv[1]
		}
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: c.Method, Host: c.Host, Path: c.Path, Headers: hdrs,
		}},
		ContextExtensions: env.RouteContext(c.Method, c.Host, c.Path),
	}}
	resp, err := client.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.GetDeniedResponse(); d != nil {
		v, err := denial(int(d.GetStatus().GetCode()), []byte(d.GetBody()))
		if err != nil {
			t.Fatalf("ext_authz denial body %q: %v", d.GetBody(), err)
		}
		return v
	}
	up := map[string]string{}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		up[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return allowed(up)
}

// viaFilter is what the filter does with o.
func viaFilter(t *testing.T, o outcome) verdict {
	t.Helper()
	if o.local != nil {
		v, err := denial(int(o.local.StatusCode), o.local.Data)
		if err != nil {
			t.Fatalf("the filter's denial body %q: %v", o.local.Data, err)
		}
		return v
	}
	if o.action != types.ActionContinue {
		t.Fatalf("the filter neither answered nor let the request through (action %v)", o.action)
	}
	return allowed(o.up)
}

// TestDecisionsMatchExtAuthz is the promise: on the same table of
// requests, the filter — natively and compiled — gives the decisions
// MeshGuard's ext_authz server gives over a real gRPC connection: the same
// status, the same denial body, the same identity told to the upstream.
// Where the filter must ask MeshGuard it does, with the request as it read
// it, and enforces what MeshGuard's real HTTP API answers.
func TestDecisionsMatchExtAuthz(t *testing.T) {
	env := filtertest.New(t)
	client := extAuthz(t, env)
	api := env.API(t)
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			if e.status != types.OnPluginStartStatusOK {
				t.Fatal("the generated configuration was refused")
			}
			for _, c := range env.Cases() {
				t.Run(c.Name, func(t *testing.T) {
					want := viaExtAuthz(t, client, env, &c)
					if want.Status != c.Status || want.Reason != c.Reason && c.Status != 200 {
						t.Fatalf("ext_authz: %+v; the table says %d %s", want, c.Status, c.Reason)
					}
					o := e.send(c.HeaderMap())
					calls := e.callouts(o.id)
					if c.Defer != (len(calls) == 1) {
						t.Fatalf("%d calls to MeshGuard; deferring: %v", len(calls), c.Defer)
					}
					if c.Defer {
						checkDeferred(t, env, &c, calls[0].Upstream, calls[0].Headers, calls[0].Body)
						e.answer(o.id, api.Client(), api.URL)
						o.action, o.local, o.up = e.host.GetCurrentHttpStreamAction(o.id), e.host.GetSentLocalResponse(o.id), e.upstream(o.id)
					}
					if got := viaFilter(t, o); got != want {
						t.Fatalf("the filter and ext_authz disagree\next_authz: %+v\nfilter:    %+v", want, got)
					}
				})
			}
		})
	}
}

// checkDeferred: the call goes to MeshGuard's cluster with the filter's
// credential, and carries the request with the route's action and tier.
func checkDeferred(t *testing.T, env *filtertest.Env, c *filtertest.Case, upstream string, hdrs [][2]string, body []byte) {
	t.Helper()
	if upstream != "meshguard_http" || header(hdrs, ":path") != filterprotocol.CheckPath ||
		header(hdrs, filterprotocol.HeaderFilterToken) != filtertest.FilterCredential {
		t.Fatalf("deferred to %s %s with headers %v", upstream, header(hdrs, ":path"), hdrs)
	}
	var dc filterprotocol.DeferredCheck
	if err := json.Unmarshal(body, &dc); err != nil {
		t.Fatal(err)
	}
	ext := env.RouteContext(c.Method, c.Host, c.Path)
	if dc.Method != c.Method || dc.Host != c.Host || dc.Path != c.Path || dc.RouteAction != ext[extauthz.ContextExtensionAction] ||
		dc.MinTier != ext[extauthz.ContextExtensionMinTier] || dc.SourceAddress != "10.1.2.3" || !strings.HasPrefix(header(c.Headers, "authorization"), "Bearer "+dc.Token) {
		t.Fatalf("deferred check %+v for %s %s%s (route context %v)", dc, c.Method, c.Host, c.Path, ext)
	}
}

// TestDeferredCheckFailsClosed: when MeshGuard cannot be asked, or answers
// anything but a well-formed verdict, the request gets a 503 and never
// passes — in the compiled filter as in the native one. The failures are
// delivered as Envoy's async client delivers them: its own 503 when the
// cluster has no healthy host, its 504 when the call times out
// (meshguard.timeoutMs), and no headers at all when the connection resets.
func TestDeferredCheckFailsClosed(t *testing.T) {
	env := filtertest.New(t)
	var deferred filtertest.Case
	for _, c := range env.Cases() {
		if c.Defer {
			deferred = c
			break
		}
	}
	allow := `{"allowed":true,"status":200,"upstreamHeaders":[["x-meshguard-agent-id","agent_forged"]]}`
	status := func(code string) [][2]string { return [][2]string{{":status", code}} }
	cases := []struct {
		name    string
		headers [][2]string
		body    string
	}{
		{"no healthy upstream", status("503"), "no healthy upstream"},
		{"timed out", status("504"), "upstream request timeout"},
		{"connection reset", nil, ""},
		{"wrong credential", status("401"), `{"error":"unauthorized"}`},
		{"an allow under another status", status("201"), allow},
		{"no status", [][2]string{{"content-type", "application/json"}}, allow},
		{"not JSON", status("200"), "<html>allowed</html>"},
		{"not a verdict", status("200"), `{"allowed":true,"status":200,"surprise":1}`},
		{"empty verdict", status("200"), `{}`},
		{"null", status("200"), `null`},
		{"an allow without a status", status("200"), `{"allowed":true}`},
		{"cut short", status("200"), allow[:len(allow)-1]},
		{"a verdict and more", status("200"), allow + `{"allowed":false}`},
		{"larger than the limit", status("200"), allow + strings.Repeat(" ", 64<<10)},
	}
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			for _, tt := range cases {
				t.Run(tt.name, func(t *testing.T) {
					e := start(t, run.vm, env.Config())
					o := e.send(deferred.HeaderMap())
					calls := e.callouts(o.id)
					if len(calls) != 1 || o.action != types.ActionPause {
						t.Fatalf("%d calls, action %v", len(calls), o.action)
					}
					e.deliver(calls[0].CalloutID, tt.headers, []byte(tt.body))
					local := e.host.GetSentLocalResponse(o.id)
					if local == nil || local.StatusCode != 503 || !strings.Contains(string(local.Data), "failing closed") {
						t.Fatalf("answer %+v (action %v); want a 503", local, e.host.GetCurrentHttpStreamAction(o.id))
					}
					if up := e.upstream(o.id); up[engine.HeaderAgentID] != "" {
						t.Fatalf("the request was given an identity: %v", up)
					}
				})
			}
		})
	}
}

// TestRealAPIRefusesAnotherCredential: MeshGuard's deferred-check endpoint
// takes only the filter's credential — not an agent token, not the admin
// token.
func TestRealAPIRefusesAnotherCredential(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	for name, set := range map[string]func(h http.Header){
		"none":        func(http.Header) {},
		"agent token": func(h http.Header) { h.Set("Authorization", "Bearer "+env.OrchT) },
		"admin token": func(h http.Header) { h.Set(filterprotocol.HeaderFilterToken, filtertest.AdminToken) },
	} {
		req, _ := http.NewRequest("POST", api.URL+filterprotocol.CheckPath, strings.NewReader(`{"method":"GET","host":"docs.mesh","path":"/"}`))
		req.Header.Set("Content-Type", "application/json")
		set(req.Header)
		resp, err := api.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
	}
}
