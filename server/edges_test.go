package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/extauthz"
)

// rawHTTP writes request on a new connection to addr and reads the
// answer: for requests an http.Client would not send.
func rawHTTP(t *testing.T, addr, request string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// The server may answer (and hang up) before it has read everything.
	go func() { _, _ = io.WriteString(conn, request) }()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

// jsonError decodes an error answer, failing unless it is JSON with an
// error code and a message.
func jsonErrorBody(t *testing.T, res *http.Response, body []byte) (code, msg string) {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%d with Content-Type %q, want JSON: %q", res.StatusCode, ct, body)
	}
	var e struct{ Error, Message string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || e.Message == "" {
		t.Fatalf("body %q: %v", body, err)
	}
	return e.Error, e.Message
}

// TestServerErrorsAreJSON: every endpoint of the HTTP port answers request
// headers over its limit with a JSON 431, and a request net/http cannot
// parse with a JSON 400, as every other MeshGuard error — not net/http's
// plain text.
func TestServerErrorsAreJSON(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(upstream.Close)
	r := start(t, func(c *config.Config) { c.ProxyTarget = upstream.URL })
	big := "X-Big: " + strings.Repeat("a", 100<<10) + "\r\n"
	tests := []struct {
		name, request string
		status        int
		code          string
	}{
		{"health, headers over the limit", "GET /health HTTP/1.1\r\nHost: mg\r\n" + big + "\r\n", 431, "headers_too_large"},
		{"admin API, headers over the limit", "GET /admin/agents HTTP/1.1\r\nHost: mg\r\n" + big + "\r\n", 431, "headers_too_large"},
		{"check, headers over the limit", "POST /v1/check HTTP/1.1\r\nHost: mg\r\n" + big + "\r\n", 431, "headers_too_large"},
		{"ext_authz, headers over the limit", "GET " + extauthz.PathPrefix + "/x HTTP/1.1\r\nHost: mg\r\n" + big + "\r\n", 431, "headers_too_large"},
		{"gateway, headers over the server's limit", "GET /proxy/x HTTP/1.1\r\nHost: mg\r\n" + big + "\r\n", 431, "headers_too_large"},
		{"gateway, headers over its own limit", "GET /proxy/x HTTP/1.1\r\nHost: mg\r\nX-Big: " + strings.Repeat("a", 62<<10) + "\r\n\r\n", 431, "headers_too_large"},
		{"no Host header", "GET /health HTTP/1.1\r\n\r\n", 400, "bad_request"},
		{"a malformed header", "GET /health HTTP/1.1\r\nHost: mg\r\nNo colon\r\n\r\n", 400, "bad_request"},
		{"an unknown transfer coding", "POST /v1/check HTTP/1.1\r\nHost: mg\r\nTransfer-Encoding: rot13\r\n\r\n", 501, "not_implemented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := rawHTTP(t, r.addrs.HTTP, tt.request)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %q", res.StatusCode, tt.status, body)
			}
			if code, _ := jsonErrorBody(t, res, body); code != tt.code {
				t.Fatalf("error %q, want %q", code, tt.code)
			}
		})
	}
	// The server still answers what it should, on a connection of its own.
	res, body := rawHTTP(t, r.addrs.HTTP, "GET /health HTTP/1.1\r\nHost: mg\r\nConnection: close\r\n\r\n")
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "ok") {
		t.Fatalf("/health: %d %q", res.StatusCode, body)
	}
}

// TestAbsoluteFormTargetAtTheGateway: an absolute-form request target
// under /proxy reaches the gateway, which refuses it (it is no forward
// proxy) with the documented 400 — not the admin API's 404.
func TestAbsoluteFormTargetAtTheGateway(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("the upstream was reached")
	}))
	t.Cleanup(upstream.Close)
	r := start(t, func(c *config.Config) { c.ProxyTarget = upstream.URL })
	res, body := rawHTTP(t, r.addrs.HTTP, "GET http://example.com/proxy/docs/a HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %q", res.StatusCode, body)
	}
	if code, msg := jsonErrorBody(t, res, body); code != "bad_request" || !strings.Contains(msg, "absolute-form") {
		t.Fatalf("error %q: %q", code, msg)
	}
}

// TestGRPCMessageLimit: a CheckRequest over the bounds extauthz checks,
// but under 4 MiB, is decided (400 naming the bound), as
// docs/enforcement.md says; only a message over 4 MiB is refused by gRPC
// itself (RESOURCE_EXHAUSTED, which Envoy treats as a denial).
func TestGRPCMessageLimit(t *testing.T) {
	r := start(t, nil)
	withExtensions := func(n, size int) *authv3.CheckRequest {
		req := checkRequest("not-a-token", "GET", "/docs/a")
		req.Attributes.ContextExtensions = map[string]string{}
		for i := range n {
			req.Attributes.ContextExtensions[fmt.Sprintf("k%d", i)] = strings.Repeat("v", size)
		}
		return req
	}
	client := authv3.NewAuthorizationClient(r.grpc)
	ctx := context.Background()

	// 2.5 MiB of context extensions, more entries than allowed.
	resp, err := client.Check(ctx, withExtensions(80, 32<<10))
	if err != nil {
		t.Fatalf("a 2.5 MiB CheckRequest was refused by gRPC: %v", err)
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 400 || !strings.Contains(resp.GetDeniedResponse().GetBody(), "context_extensions") {
		t.Fatalf("a request over the bounds: %d %s; want 400 naming context_extensions", got, resp.GetDeniedResponse().GetBody())
	}

	_, err = client.Check(ctx, withExtensions(5, 1<<20))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a 5 MiB CheckRequest: %v, want RESOURCE_EXHAUSTED", err)
	}
}
