package extauthz

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// rawHeaders is a CheckRequest as Envoy sends it with encode_raw_headers:
// header_map with raw bytes instead of the headers map.
func rawHeaders(method, path string, kv ...string) *authv3.CheckRequest {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Host: "docs.internal", HeaderMap: hm},
	}}}
}

func manyHeaders(n, size int, extra map[string]string) map[string]string {
	h := make(map[string]string, n+len(extra))
	for i := range n {
		h[fmt.Sprintf("x-h-%05d", i)] = strings.Repeat("v", size)
	}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

// TestGRPCHostile sends what no Envoy would and checks each gets a clear
// denial — never an allow, never a gRPC error — and that the server still
// answers a good request afterwards.
func TestGRPCHostile(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	client := startGRPC(t, rec, testLog(t, nil))
	bearer := "Bearer " + m.mailT
	withHeaders := func(h map[string]string) *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/docs", Host: "docs.internal", Headers: h},
		}}}
	}
	tests := []struct {
		name      string
		req       *authv3.CheckRequest
		status    int
		reason    string
		message   string // a substring of the deny message
		reachesEx bool   // whether the engine is asked
	}{
		{"empty CheckRequest (nil on the wire)", &authv3.CheckRequest{}, 401, engine.ReasonUnauthorized, "no attributes.request.http", false},
		{"attributes without a request", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{}}}, 401, engine.ReasonUnauthorized, "missing bearer token", false},
		{"empty HTTP request", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{}}}},
			401, engine.ReasonUnauthorized, "missing bearer token", true},
		{"1 MiB header", withHeaders(map[string]string{"authorization": bearer, "cookie": strings.Repeat("a", 1<<20)}), 400, engine.ReasonBadRequest, `"cookie" is longer than the limit`, false},
		{"1 MiB raw header", rawHeaders("GET", "/docs", "authorization", bearer, "x-big", strings.Repeat("a", 1<<20)), 400, engine.ReasonBadRequest, "longer than the limit", false},
		{"10k headers", withHeaders(manyHeaders(10_000, 8, map[string]string{"authorization": bearer})), 400, engine.ReasonBadRequest, "more than 200 request headers", false},
		{"10k raw headers", rawHeaders("GET", "/docs", strings.Split(strings.Repeat("x-a,b,", 10_000), ",")...), 400, engine.ReasonBadRequest, "more than 200 request headers", false},
		{"headers over the total", withHeaders(manyHeaders(20, 8<<10, map[string]string{"authorization": bearer})), 400, engine.ReasonBadRequest, "in total", false},
		{"9 KiB token", withHeaders(map[string]string{"authorization": "Bearer " + strings.Repeat("a", 9<<10)}), 400, engine.ReasonBadRequest, "authorization is longer", false},
		{"9 KiB delegation", withHeaders(map[string]string{"authorization": bearer, engine.HeaderDelegation: strings.Repeat("a", 9<<10)}), 400, engine.ReasonBadRequest, "x-meshguard-delegation is longer", false},
		{"two authorization headers", rawHeaders("GET", "/docs", "authorization", bearer, "Authorization", "Bearer "+m.orchT), 400, engine.ReasonBadRequest, "appears more than once", false},
		{"two authorization values joined by Envoy", withHeaders(map[string]string{"authorization": bearer + ",Bearer " + m.orchT}), 400, engine.ReasonBadRequest, "more than one value", false},
		{"two delegation headers", rawHeaders("GET", "/docs", "authorization", bearer, "x-meshguard-delegation", "a.b.c", "X-MeshGuard-Delegation", "d.e.f"), 400, engine.ReasonBadRequest, "appears more than once", false},
		{"invalid UTF-8 path", rawHeaders("GET", "", ":path", "/docs/\xff\xfe", "authorization", bearer), 400, engine.ReasonBadRequest, "not valid UTF-8", true},
		{"invalid UTF-8 in the query a policy reads", rawHeaders("POST", "/email?to=%C3", "authorization", bearer), 400, engine.ReasonBadRequest, "UTF-8", true},
		{"a query parameter a policy reads, twice", rawHeaders("POST", "/email?to=a@example.com&to=eve@evil.test", "authorization", bearer), 400, engine.ReasonBadRequest, "appears more than once", true},
		{"a path parameter", rawHeaders("GET", "/docs;/private/x", "authorization", bearer), 400, engine.ReasonBadRequest, "path parameter", true},
		{"invalid UTF-8 token", rawHeaders("GET", "/docs", "authorization", "Bearer \xff\xff.\xfe.\xfd"), 401, engine.ReasonUnauthorized, "", true},
		{"alg none token", withHeaders(map[string]string{"authorization": "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZ2VudF9hYWFhYWFhYWFhYWFhYWFhYWFhYSIsImF1ZCI6Im1lc2hndWFyZCIsImlzcyI6Im1lc2hndWFyZCJ9."}),
			401, engine.ReasonUnauthorized, "", true},
		{"alg none token, no signature dot", withHeaders(map[string]string{"authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0"}), 401, engine.ReasonUnauthorized, "", true},
		{"bearer without a token", withHeaders(map[string]string{"authorization": "Bearer "}), 401, engine.ReasonUnauthorized, "missing bearer token", true},
		{"path of 9 KiB", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/" + strings.Repeat("p", 9<<10), Headers: map[string]string{"authorization": bearer}}}}}, 400, engine.ReasonBadRequest, "path", true},
		{"1000 context extensions", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request:           &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/docs", Headers: map[string]string{"authorization": bearer}}},
			ContextExtensions: manyHeaders(1000, 1, nil)}}, 400, engine.ReasonBadRequest, "context_extensions", false},
		{"header name of 40 KiB", withHeaders(map[string]string{"authorization": bearer, strings.Repeat("n", 40<<10): "v"}), 403, "action_unresolved", "", true},
	}
	// The last one is within every bound (a long name, a short value) but
	// names a method that maps to no verb: the engine's answer counts.
	tests[len(tests)-1].req.Attributes.Request.Http.Method = "BREW"

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, before := rec.last()
			b, _ := denied(t, check(t, client, tc.req), tc.status)
			if b.Reason != tc.reason || !strings.Contains(b.Message, tc.message) {
				t.Fatalf("got %s %q, want %s containing %q", b.Reason, b.Message, tc.reason, tc.message)
			}
			if len(b.Message) > 300 {
				t.Fatalf("message of %d bytes echoes the input: %.100s…", len(b.Message), b.Message)
			}
			if _, after := rec.last(); (after > before) != tc.reachesEx {
				t.Fatalf("engine asked: %v, want %v", after > before, tc.reachesEx)
			}
		})
	}

	// Still serving.
	up, _, _ := allowed(t, check(t, client, envoyCheck(call{method: "GET", path: "/contacts", token: m.mailT})))
	if up[engine.HeaderAgentID] != m.mail.ID {
		t.Fatalf("after the hostile requests: %v", up)
	}
}

// TestCheckNil calls the service in-process with what gRPC never delivers
// but a caller of the exported method could pass.
func TestCheckNil(t *testing.T) {
	m := newMesh(t, enginetest.Options{Mode: engine.ModeAudit})
	s := NewServer(m.f.Engine, nil)
	for name, req := range map[string]*authv3.CheckRequest{
		"nil request":    nil,
		"nil attributes": {},
		"nil http":       {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := s.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			// Even in audit mode: there is no HTTP request to let through.
			if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
				t.Fatalf("%v", resp)
			}
		})
	}
}

// TestRawHeaderMapSpellings: with encode_raw_headers, x-env and X_Env are
// two spellings of one header to CGI-style upstreams; a policy reading
// x-env sees both, a repeat.
func TestRawHeaderMapSpellings(t *testing.T) {
	hm := rawHeaderMap{{Key: "x-env", RawValue: []byte("staging")}, {Key: "X_Env", Value: "prod"}}
	if v, n := hm.Lookup("x-env"); n != 2 || v != "prod" {
		t.Fatalf("x-env: %q counted %d times, want 2", v, n)
	}
}
