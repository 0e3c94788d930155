package extauthz

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/trust"
)

var discard = slog.New(slog.DiscardHandler)

// BenchmarkGRPCCheck: the real engine (SQLite, EdDSA token, cached
// verification) behind a real loopback gRPC connection, callers in parallel;
// and, for scale, the same adapter and connection with a Checker that
// answers a fixed allow (gRPC, proto and the adapter, no engine). The
// client's cost is in both: client and server share the CPUs.
//
// engine renders the default answer; engine-answer-all every
// ANSWER_EXTRAS part (the answer of earlier versions).
func BenchmarkGRPCCheck(b *testing.B) {
	em := enginetest.NewMesh(b, enginetest.Options{Routes: routes})
	req := envoyCheck(call{method: "GET", host: "docs.internal:8080", path: "/docs/readme?lang=en", token: em.OrchT})
	fixed, err := em.F.Engine.Check(context.Background(), &engine.Request{Token: em.OrchT, Method: "GET", Path: "/docs/readme"})
	if err != nil || !fixed.Allowed {
		b.Fatal(fixed, err)
	}
	all := newMesh(b, enginetest.Options{Answer: engine.AnswerAll})
	allReq := envoyCheck(call{method: "GET", host: "docs.internal:8080", path: "/docs/readme?lang=en", token: all.orchT})
	b.Run("engine", func(b *testing.B) { benchGRPC(b, em.F.Engine, req) })
	b.Run("engine-answer-all", func(b *testing.B) { benchGRPC(b, all.f.Engine, allReq) })
	b.Run("fixed-decision", func(b *testing.B) { benchGRPC(b, fixedChecker{fixed}, req) })
}

type fixedChecker struct{ d engine.Decision }

func (f fixedChecker) Check(context.Context, *engine.Request) (engine.Decision, error) {
	return f.d, nil
}

func benchGRPC(b *testing.B, c Checker, req *authv3.CheckRequest) {
	client := startGRPC(b, c, discard)
	if resp := check(b, client, req); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		b.Fatalf("not allowed: %v", resp)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			resp, err := client.Check(ctx, req)
			if err != nil || resp.GetOkResponse() == nil {
				b.Errorf("Check: %v %v", resp, err)
				return
			}
		}
	})
}

// BenchmarkHTTPCheck: the same, through the HTTP ext_authz handler.
func BenchmarkHTTPCheck(b *testing.B) {
	m := newMesh(b, enginetest.Options{})
	srv := startHTTP(b, m.f.Engine, discard)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", srv.URL+PathPrefix+"/docs/readme?lang=en", nil)
			req.Host = "docs.internal:8080"
			req.Header.Set("Authorization", "Bearer "+m.orchT)
			req.Header.Set("Traceparent", traceparent)
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkConvert: CheckRequest → engine.Request for a realistic request
// (14 headers, a bearer token, a traceparent, context extensions).
func BenchmarkConvert(b *testing.B) {
	req := envoyCheck(call{method: "POST", host: "emailer.mesh:8080", path: "/email?draft=1", token: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudF94In0.c2lnbmF0dXJl",
		headers: map[string]string{"x-request-id": "4d1f0c1e-2b7a-4f8e-9c3d-5a6b7c8d9e0f", engine.HeaderDelegation: "d.e.f", "content-type": "application/json"},
		ext:     map[string]string{ContextExtensionAction: "write:email", "service": "emailer"}})
	b.ReportAllocs()
	for b.Loop() {
		var r engine.Request
		if rj := fromCheckRequest(req, &r); rj != nil || r.Token == "" || r.TraceID == "" {
			b.Fatalf("%+v %+v", rj, r)
		}
	}
}

// BenchmarkRespond: rendering an allow with a minted delegation token.
func BenchmarkRespond(b *testing.B) {
	d := engine.Decision{ID: "dec_0123456789abcdef01234567", Allowed: true, Effect: "allow", Status: 200, Reason: "rule_allow",
		Policy: "orchestrators", Rule: "work", AgentID: "agent_abcdefghijklmnopqrst", AgentName: "orchestrator", Action: "write:research/agents",
		Chain: []string{"agent_abcdefghijklmnopqrst"}, Delegation: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudF94In0.c2lnbmF0dXJl", TraceID: traceHex}
	b.ReportAllocs()
	for b.Loop() {
		if resp := checkResponse(&d); resp.GetOkResponse() == nil {
			b.Fatal(resp)
		}
	}
}

// BenchmarkGRPCCheckMCP: the real engine behind real gRPC deciding an MCP
// tools/call carried in a 2 KB body (the route declares protocol mcp:
// take the body whole, parse it, decide on the tool), against the same Check
// without a body (the route names the action itself). The difference is
// what reading the body adds (docs/performance.md; the budget is 3 µs).
func BenchmarkGRPCCheckMCP(b *testing.B) {
	f := enginetest.New(b, labPolicy, enginetest.Options{})
	_, tok := f.Agent(b, "emailer", trust.Verified, []string{"emailer"})
	args := map[string]any{"query": "agent meshes", "limit": 20, "notes": strings.Repeat("The week in papers. ", 96)}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": map[string]any{"name": "search_papers", "arguments": args}})
	if err != nil {
		b.Fatal(err)
	}
	if len(body) < 2000 || len(body) > 2100 {
		b.Fatalf("body of %d bytes, want about 2 KB", len(body))
	}
	withBody := envoyCheck(call{method: "POST", host: "lab.mesh", path: "/mcp", token: tok, ext: labExt,
		headers: map[string]string{"content-type": "application/json", "content-length": strconv.Itoa(len(body)), HeaderPartialBody: "false"}})
	withBody.Attributes.Request.Http.RawBody = body
	noBody := envoyCheck(call{method: "POST", host: "lab.mesh", path: "/mcp", token: tok, ext: map[string]string{ContextExtensionAction: "call:lab/search_papers"},
		headers: map[string]string{"content-type": "application/json"}})
	b.Run("no-body", func(b *testing.B) { benchGRPC(b, f.Engine, noBody) })
	b.Run("tools-call-2KB", func(b *testing.B) { benchGRPC(b, f.Engine, withBody) })
}

// BenchmarkConvertMCP: what the adapter adds for a body — taking a 2 KB
// raw_body whole (partial mark, Content-Length) — against the same
// CheckRequest without one. The gRPC benchmarks above are too noisy on a
// shared machine to show a few microseconds.
func BenchmarkConvertMCP(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_papers","arguments":{"query":"agent meshes","notes":"` + strings.Repeat("The week in papers. ", 96) + `"}}}`)
	withBody := envoyCheck(call{method: "POST", host: "lab.mesh", path: "/mcp", token: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudF94In0.c2lnbmF0dXJl", ext: labExt,
		headers: map[string]string{"content-type": "application/json", "content-length": strconv.Itoa(len(body)), HeaderPartialBody: "false"}})
	withBody.Attributes.Request.Http.RawBody = body
	noBody := envoyCheck(call{method: "POST", host: "lab.mesh", path: "/mcp", token: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudF94In0.c2lnbmF0dXJl",
		ext: map[string]string{ContextExtensionAction: "call:lab/search_papers"}, headers: map[string]string{"content-type": "application/json"}})
	for _, bc := range []struct {
		name string
		req  *authv3.CheckRequest
		body bool
	}{{"no-body", noBody, false}, {"tools-call-2KB", withBody, true}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r engine.Request
				if rj := fromCheckRequest(bc.req, &r); rj != nil || r.BodyError != nil || (len(r.Body) > 0) != bc.body {
					b.Fatalf("%+v %v", rj, r.BodyError)
				}
			}
		})
	}
}

// BenchmarkGRPCAnswer: what each part of an allow's answer costs through
// real gRPC — the server encoding it, the client decoding it, on the same
// CPUs as under ghz — from the empty OK (the no-op server's answer) to
// the full answer of a fixed decision, one part taken away at a time. The
// answers are made once: this is the wire's cost, not the rendering's
// (BenchmarkRespond).
func BenchmarkGRPCAnswer(b *testing.B) {
	d := engine.Decision{ID: "dec_0123456789abcdef01234567", Allowed: true, Effect: "allow", Status: 200, Reason: "rule_allow",
		Policy: "orchestrators", Rule: "work", AgentID: "agent_abcdefghijklmnopqrst", AgentName: "orchestrator", Action: "write:research/agents",
		Chain: []string{"agent_abcdefghijklmnopqrst"}, TraceID: traceHex}
	d.SetAnswer(engine.AnswerAll)
	full := checkResponse(&d)
	variant := func(edit func(*authv3.CheckResponse)) *authv3.CheckResponse {
		r := proto.Clone(full).(*authv3.CheckResponse)
		edit(r)
		return r
	}
	keepUpstream := func(names ...string) func(*authv3.CheckResponse) {
		return func(r *authv3.CheckResponse) {
			ok := r.GetOkResponse()
			ok.Headers = slices.DeleteFunc(ok.Headers, func(h *corev3.HeaderValueOption) bool { return !slices.Contains(names, h.GetHeader().GetKey()) })
		}
	}
	d.SetAnswer(0)
	for _, bc := range []struct {
		name string
		resp *authv3.CheckResponse
	}{
		{"empty-ok", &authv3.CheckResponse{Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}},
		{"full", full},
		{"no-metadata", variant(func(r *authv3.CheckResponse) { r.DynamicMetadata = nil })},
		{"metadata-decision-id", variant(func(r *authv3.CheckResponse) {
			r.DynamicMetadata.Fields = map[string]*structpb.Value{"decision_id": r.DynamicMetadata.Fields["decision_id"]}
		})},
		{"no-response-headers", variant(func(r *authv3.CheckResponse) { r.GetOkResponse().ResponseHeadersToAdd = nil })},
		{"upstream-agent-id-only", variant(keepUpstream(engine.HeaderAgentID))},
		{"no-headers-to-remove", variant(func(r *authv3.CheckResponse) { r.GetOkResponse().HeadersToRemove = nil })},
		{"default", checkResponse(&d)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchGRPCServer(b, canned{resp: bc.resp})
			b.ReportMetric(float64(proto.Size(bc.resp)), "answer-bytes")
		})
	}
}

// canned answers every Check with the same response.
type canned struct {
	authv3.UnimplementedAuthorizationServer
	resp *authv3.CheckResponse
}

func (c canned) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return c.resp, nil
}

func benchGRPCServer(b *testing.B, s authv3.AuthorizationServer) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, s)
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	req := envoyCheck(call{method: "GET", host: "docs.internal:8080", path: "/docs/readme?lang=en", token: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudF94In0.c2lnbmF0dXJl"})
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := client.Check(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// CPU time (client and server, this process) rather than wall time:
	// on a machine others load, it is the steadier figure.
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
