package extauthz

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
)

// FuzzCheckRequest feeds the CheckRequest → engine.Request conversion (and
// the HTTP one, and the rendering of what comes out) with fuzzed requests,
// built field by field and decoded from arbitrary wire bytes. Nothing may
// panic, every refusal must be a well-formed denial, and every response
// must marshal (valid UTF-8 everywhere).
//
// The request built field by field is also decided, by a Server over a
// real engine and store ("{orch}" and "{mail}" in a header value stand for
// those agents' tokens, so the fuzzer reaches allowed requests too). Its
// answer is either an allowance with consistent headers — MeshGuard's
// identity set or removed, never both, nothing a caller forged left in
// place — or a denial with a reason code, never a mix of the two.
func FuzzCheckRequest(f *testing.F) {
	f.Add("GET", "docs.internal:8080", "/docs?x=1", "authorization", "Bearer a.b.c", "traceparent", traceparent, ContextExtensionAction, "read:docs", []byte(nil))
	f.Add("POST", "", "", "X-MeshGuard-Context", `{"recipient":"a@example.com"}`, "x-meshguard-action", "write:email", "", "", []byte{0x0a, 0x00})
	f.Add("BREW", "h\xff", "/\xfe", "Authorization", "bearer \xff", "authorization", "Bearer x", "k", strings.Repeat("v", 40), []byte{0x0a, 0x03, 0x22, 0x01, 0x12})
	f.Add("GET", "docs.internal", "/docs", "authorization", "Bearer {orch}", "x_meshguard_agent_id", "agent_forged", ContextExtensionAction, "read:docs", []byte(nil))
	f.Add("POST", "emailer.mesh", "/send/x", "authorization", "Bearer {mail}", "x-meshguard-delegation", "d.e.f", ContextExtensionMinTier, "trusted", []byte(nil))
	for _, c := range []call{
		{method: "GET", host: "docs.internal:8080", path: "/docs/readme?lang=en", token: "eyJhbGciOiJFZERTQSJ9.e30.sig"},
		{method: "POST", host: "emailer.mesh", path: "/email", headers: map[string]string{engine.HeaderContext: `{"recipient":"x"}`, engine.HeaderDelegation: "d.e.f"},
			ext: map[string]string{ContextExtensionAction: "write:email"}},
	} {
		wire, err := proto.Marshal(envoyCheck(c))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.method, c.host, c.path, "", "", "", "", "", "", wire)
	}
	// An MCP tools/call as Envoy sends it on a protocol route: the
	// fuzzer mutates the body, the partial mark and the extensions.
	mcpReq := envoyCheck(call{method: "POST", host: "lab.mesh", path: "/mcp", ext: labExt, headers: map[string]string{HeaderPartialBody: "false", "content-length": "88"}})
	mcpReq.Attributes.Request.Http.RawBody = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":1}}}`)
	wire, err := proto.Marshal(mcpReq)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("POST", "lab.mesh", "/mcp", "", "", "", "", ContextExtensionProtocol, "mcp", wire)
	m := newMesh(f, enginetest.Options{Now: fixedClock()})
	srv := NewServer(m.f.Engine, slog.New(slog.DiscardHandler))
	tokens := strings.NewReplacer("{orch}", m.orchT, "{mail}", m.mailT)
	f.Fuzz(func(t *testing.T, method, host, path, n1, v1, n2, v2, extKey, extVal string, wire []byte) {
		http1 := &authv3.AttributeContext_HttpRequest{Method: method, Host: host, Path: path,
			Headers: map[string]string{n1: v1, n2: v2, ":path": path, ":authority": host}}
		convert(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source:            &authv3.AttributeContext_Peer{Address: sockAddr(host, 1)},
			Request:           &authv3.AttributeContext_Request{Http: http1},
			ContextExtensions: map[string]string{extKey: extVal},
		}})
		decided := &authv3.AttributeContext_HttpRequest{Method: method, Host: host, Path: path,
			Headers: map[string]string{n1: tokens.Replace(v1), n2: tokens.Replace(v2), ":path": path, ":authority": host, ":method": method}}
		resp, err := srv.Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source:            &authv3.AttributeContext_Peer{Address: sockAddr("10.0.0.7", 1)},
			Request:           &authv3.AttributeContext_Request{Http: decided},
			ContextExtensions: map[string]string{extKey: extVal},
		}})
		if err != nil {
			t.Fatalf("Check failed, on a working engine and store: %v", err)
		}
		checkAnswer(t, resp, decided.Headers)

		raw := &authv3.AttributeContext_HttpRequest{Method: method, HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: n1, RawValue: []byte(v1)}, {Key: n2, Value: v2}, {Key: n1, Value: v2}, {Key: "traceparent", RawValue: []byte(v2)},
		}}}
		convert(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: raw}}})

		var cr authv3.CheckRequest
		if proto.Unmarshal(wire, &cr) == nil {
			convert(t, &cr)
		}

		var r engine.Request
		req := &http.Request{Method: method, Host: host, RequestURI: path, URL: &url.URL{Path: path}, RemoteAddr: v2,
			Header: http.Header{n1: {v1, v2}, n2: {v2}, "X-Forwarded-For": {v1}}}
		if rj := fromHTTPRequest(req, &r); rj != nil {
			checkRejection(t, rj, &r)
		}
		if r.Source != engine.SourceExtAuthzHTTP || r.Path == "" || r.Path[0] != '/' && len(path) > 0 && path[0] == '/' {
			t.Fatalf("HTTP request: %+v from path %q", r, path)
		}
		if r.SourceAddress != "" && !utf8.ValidString(r.SourceAddress) {
			t.Fatalf("source address %q", r.SourceAddress)
		}
	})
}

// checkAnswer fails unless resp is a well-formed allowance or denial of a
// request with the headers sent, and marshals.
func checkAnswer(t *testing.T, resp *authv3.CheckResponse, sent map[string]string) {
	t.Helper()
	mustMarshal(t, resp)
	ok, dr := resp.GetOkResponse(), resp.GetDeniedResponse()
	code := codes.Code(resp.GetStatus().GetCode())
	md := resp.GetDynamicMetadata().GetFields()
	switch {
	case (ok == nil) == (dr == nil):
		t.Fatalf("neither or both of an allowance and a denial: %v", resp)
	case (code == codes.OK) != (ok != nil):
		t.Fatalf("gRPC status %v with allowed %v", code, ok != nil)
	case ok != nil:
		up := headerMap(t, ok.GetHeaders())
		if md["effect"].GetStringValue() != "allow" || headerMap(t, ok.GetResponseHeadersToAdd())[engine.HeaderDecision] != "allow" {
			t.Fatalf("allowed, with effect %q and response headers %v", md["effect"].GetStringValue(), ok.GetResponseHeadersToAdd())
		}
		if up[engine.HeaderAgentID] != md["agent_id"].GetStringValue() || up[engine.HeaderAgentID] == "" {
			t.Fatalf("allowed as %q upstream, %q in the metadata", up[engine.HeaderAgentID], md["agent_id"].GetStringValue())
		}
		removed := map[string]bool{}
		for _, name := range ok.GetHeadersToRemove() {
			if _, set := up[name]; set {
				t.Fatalf("header %s both set and removed", name)
			}
			removed[name] = true
		}
		for _, name := range append(slices.Clone(engine.StrippedUpstreamHeaders), engine.HeaderDelegation) {
			if _, set := up[name]; !set && !removed[name] {
				t.Fatalf("identity header %s neither set nor removed: a caller's would reach the upstream", name)
			}
		}
		for name := range sent {
			if strings.Contains(name, "_") && edge.IsMeshGuardHeader(name) && !removed[name] {
				t.Fatalf("the caller's %q is left in place", name)
			}
		}
	default:
		want := codes.PermissionDenied
		if dr.GetStatus().GetCode() == 401 {
			want = codes.Unauthenticated
		}
		st := int(dr.GetStatus().GetCode())
		if code != want || st < 400 || st > 599 {
			t.Fatalf("denied with gRPC status %v and HTTP status %d", code, st)
		}
		b := decodeDenial(t, []byte(dr.GetBody()))
		if b.Reason == "" || md["reason"].GetStringValue() != b.Reason || md["effect"].GetStringValue() != "deny" ||
			headerMap(t, dr.GetHeaders())[engine.HeaderDecision] != "deny" {
			t.Fatalf("a denial without a consistent reason code: body %s, metadata %v", dr.GetBody(), md)
		}
	}
}

// decodeDenial decodes a deny body, plain or, for a JSON-RPC request to a
// protocol route, a JSON-RPC error whose data is the deny body.
func decodeDenial(t *testing.T, raw []byte) body {
	t.Helper()
	var rpc struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int64           `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &rpc) == nil && rpc.JSONRPC != "" {
		if rpc.JSONRPC != "2.0" || len(rpc.ID) == 0 || rpc.Error.Code == 0 || rpc.Error.Message == "" {
			t.Fatalf("a JSON-RPC denial that is no JSON-RPC error: %s", raw)
		}
		return decodeBody(t, rpc.Error.Data)
	}
	return decodeBody(t, raw)
}

// convert runs one CheckRequest through the conversion and the rendering.
func convert(t *testing.T, cr *authv3.CheckRequest) {
	var r engine.Request
	rj := fromCheckRequest(cr, &r)
	if r.Source != engine.SourceExtAuthzGRPC || r.TraceID != "" && len(r.TraceID) != 32 {
		t.Fatalf("request: %+v", r)
	}
	if rj != nil {
		checkRejection(t, rj, &r)
		return
	}
	if cr.GetAttributes().GetRequest().GetHttp() == nil {
		t.Fatal("a CheckRequest without HTTP attributes went to the engine")
	}
	if len(r.Token) > MaxTokenLen || len(r.Delegation) > MaxTokenLen || strings.Contains(r.Token, ",") || strings.Contains(r.Delegation, ",") {
		t.Fatalf("unbounded or listed credential reached the engine: %d %d", len(r.Token), len(r.Delegation))
	}
	var headerValue string
	if r.Headers != nil {
		headerValue, _ = r.Headers.Lookup("x-meshguard-context")
	}
	// Render decisions carrying the request's raw strings, as an engine
	// might echo them: the responses must marshal.
	for _, allowed := range []bool{true, false} {
		d := engine.Decision{ID: "dec_x", Allowed: allowed, Effect: "deny", Status: 403, AgentID: r.Token, AgentName: headerValue,
			Action: headerValue, Resource: r.Path, Policy: r.Host, Rule: r.Path, Reason: r.Method, Message: headerValue,
			Chain: []string{r.Delegation}, Delegation: r.RouteAction, TraceID: r.TraceID}
		mustMarshal(t, checkResponse(&d))
	}
}

func checkRejection(t *testing.T, rj *rejection, r *engine.Request) {
	if rj.status != 400 && rj.status != 401 || rj.reason == "" || rj.message == "" || len(rj.message) > 300 {
		t.Fatalf("rejection %+v", rj)
	}
	d := rj.decision(r)
	resp := checkResponse(&d)
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK || resp.GetDeniedResponse() == nil || d.Allowed {
		t.Fatalf("a rejection allowed: %v", resp)
	}
	mustMarshal(t, resp)
}

func mustMarshal(t *testing.T, m proto.Message) {
	if _, err := proto.Marshal(m); err != nil {
		t.Fatalf("response does not marshal: %v", err)
	}
}
