package extauthz

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// The bounds of docs/enforcement.md#bounds, each held at its value (the
// request reaches the engine and is allowed) and one past it (400
// bad_request naming the bound, and the engine is never asked). The
// hostile tests send inputs far past each bound; these pin where it is.

// fillers returns n headers named x-fill-NNN with short values, in the
// spelling Envoy's headers map uses.
func fillers(n int) map[string]string {
	h := make(map[string]string, n)
	for i := range n {
		h[fmt.Sprintf("x-fill-%03d", i)] = "v"
	}
	return h
}

// rawFillers is fillers as key, value pairs for rawHeaders.
func rawFillers(n int) []string {
	kv := make([]string, 0, 2*n)
	for i := range n {
		kv = append(kv, fmt.Sprintf("x-fill-%03d", i), "v")
	}
	return kv
}

// mapRequest is an allowed request (the emailer reading its contacts)
// with exactly the headers in h and the given context_extensions.
func mapRequest(h map[string]string, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/contacts", Host: "crm.internal", Headers: h,
		}},
		ContextExtensions: ext,
	}}
}

// withAuth returns h plus the authorization header.
func withAuth(h map[string]string, token string) map[string]string {
	h["authorization"] = "Bearer " + token
	return h
}

// limitCase is one request at or one past a bound; refused is the deny
// message's substring, "" when the request must be allowed.
type limitCase struct {
	name    string
	req     *authv3.CheckRequest
	refused string
}

// runLimits checks each case through real gRPC.
func runLimits(t *testing.T, client authv3.AuthorizationClient, rec *recorder, tests []limitCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, before := rec.last()
			resp := check(t, client, tc.req)
			_, after := rec.last()
			if tc.refused == "" {
				allowed(t, resp)
				if after != before+1 {
					t.Fatalf("the engine was asked %d times, want once", after-before)
				}
				return
			}
			b, _ := denied(t, resp, 400)
			if b.Reason != engine.ReasonBadRequest || !strings.Contains(b.Message, tc.refused) {
				t.Fatalf("got %s %q, want %s containing %q", b.Reason, b.Message, engine.ReasonBadRequest, tc.refused)
			}
			if after != before {
				t.Fatalf("the engine was asked about a request refused by the adapter")
			}
		})
	}
}

// TestGRPCLimitsAreExact: header count (headers map and header_map), one
// header value sent as raw_value, context_extensions entries and size.
func TestGRPCLimitsAreExact(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	client := startGRPC(t, rec, testLog(t, nil))
	auth := []string{"authorization", "Bearer " + m.mailT}
	raw := func(kv ...string) *authv3.CheckRequest {
		return rawHeaders("GET", "/contacts", append(append([]string{}, auth...), kv...)...)
	}
	// A header_map entry carried in value rather than raw_value.
	valued := func(n int) *authv3.CheckRequest {
		req := raw()
		hm := req.Attributes.Request.Http.HeaderMap
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: "x-big", Value: strings.Repeat("v", n)})
		return req
	}
	// One context extension of n bytes, key and value together.
	ext := func(n int) map[string]string {
		return map[string]string{"x-pad": strings.Repeat("e", n-len("x-pad"))}
	}
	tooMany := "more than " + strconv.Itoa(MaxHeaders) + " request headers"
	tooLong := `"x-big" is longer than the limit of ` + strconv.Itoa(MaxHeaderValueLen) + " bytes"
	runLimits(t, client, rec, []limitCase{
		{"headers map, 200 headers", mapRequest(withAuth(fillers(MaxHeaders-1), m.mailT), nil), ""},
		{"headers map, 201 headers", mapRequest(withAuth(fillers(MaxHeaders), m.mailT), nil), tooMany},
		{"header_map, 200 headers", raw(rawFillers(MaxHeaders - 1)...), ""},
		{"header_map, 201 headers", raw(rawFillers(MaxHeaders)...), tooMany},
		{"header_map raw_value of 32 KiB", raw("x-big", strings.Repeat("r", MaxHeaderValueLen)), ""},
		{"header_map raw_value of 32 KiB + 1", raw("x-big", strings.Repeat("r", MaxHeaderValueLen+1)), tooLong},
		{"header_map value of 32 KiB", valued(MaxHeaderValueLen), ""},
		{"header_map value of 32 KiB + 1", valued(MaxHeaderValueLen + 1), tooLong},
		{"64 context_extensions", mapRequest(withAuth(fillers(3), m.mailT), fillers(MaxContextExtensions)), ""},
		{"65 context_extensions", mapRequest(withAuth(fillers(3), m.mailT), fillers(MaxContextExtensions+1)),
			"more than " + strconv.Itoa(MaxContextExtensions) + " context_extensions"},
		{"a context extension of 32 KiB", mapRequest(withAuth(fillers(3), m.mailT), ext(MaxHeaderValueLen)), ""},
		{"a context extension of 32 KiB + 1", mapRequest(withAuth(fillers(3), m.mailT), ext(MaxHeaderValueLen+1)),
			`context_extensions entry "x-pad" is longer than the limit of ` + strconv.Itoa(MaxHeaderValueLen) + " bytes"},
	})
}

// TestGRPCPrincipalLimitIsExact: a source principal of 2,048 bytes (a
// SPIFFE ID's own limit) reaches the engine as sent; one byte more is a
// 400 naming the principal.
func TestGRPCPrincipalLimitIsExact(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	client := startServer(t, NewServer(rec, testLog(t, nil)).TrustPrincipalsFrom(func(context.Context) bool { return true }))
	principal := func(n int) string {
		const prefix = "spiffe://cluster.local/ns/default/sa/"
		return prefix + strings.Repeat("a", n-len(prefix))
	}
	// An unbound workload with the orchestrator's token: allowed as the
	// token's agent, the principal passed on to the engine.
	req := func(p string) *authv3.CheckRequest {
		return istioCheck(p, call{method: "GET", host: "docs.internal", path: "/docs/x", token: m.orchT})
	}
	at := principal(engine.MaxPrincipalLen)
	runLimits(t, client, rec, []limitCase{{"2048 bytes", req(at), ""}})
	if r, _ := rec.last(); r.Principal != at {
		t.Fatalf("the engine was given a principal of %d bytes, want the %d sent", len(r.Principal), len(at))
	}
	runLimits(t, client, rec, []limitCase{{"2049 bytes", req(principal(engine.MaxPrincipalLen + 1)),
		"attributes.source.principal is not valid UTF-8 or is longer than the limit of " + strconv.Itoa(engine.MaxPrincipalLen) + " bytes"}})
}

// TestHTTPHeaderCountIsExact: the HTTP ext_authz path counts request
// headers against the same bound (Host, which net/http keeps apart, is no
// header here). The request is written with exactly n headers: User-Agent
// and Accept-Encoding are set so the client adds none of its own.
func TestHTTPHeaderCountIsExact(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	srv := startHTTP(t, rec, testLog(t, nil))
	send := func(t *testing.T, n int) (int, body, bool) {
		req := contactsRequest(t, srv.URL, m.mailT)
		for i := range n - len(req.Header) {
			req.Header.Set(fmt.Sprintf("X-Fill-%03d", i), "v")
		}
		return sendHTTP(t, rec, req)
	}
	t.Run("200 headers", func(t *testing.T) {
		if status, b, asked := send(t, MaxHeaders); status != 200 || !asked {
			t.Fatalf("status %d (%s), engine asked %v; want 200 from the engine", status, b.Message, asked)
		}
	})
	t.Run("201 headers", func(t *testing.T) {
		status, b, asked := send(t, MaxHeaders+1)
		if status != 400 || b.Reason != engine.ReasonBadRequest || b.Message != "more than 200 request headers" || asked {
			t.Fatalf("status %d %s %q, engine asked %v; want 400 bad_request before the engine", status, b.Reason, b.Message, asked)
		}
	})
}

// TestHTTPHeaderBytesCountTheHost: all header names and values together
// are bounded at 96 KiB on the HTTP path too, and the Host header counts
// although net/http keeps it out of the header map. The requests are
// written with exactly the headers below (the client adds none).
func TestHTTPHeaderBytesCountTheHost(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	srv := startHTTP(t, rec, testLog(t, nil))
	const host = "crm.internal" // contactsRequest's
	// send writes a request whose headers, Host included, total n bytes.
	send := func(t *testing.T, n int) (int, body, bool) {
		req := contactsRequest(t, srv.URL, m.mailT)
		left := n - len("Host") - len(host)
		for k, vs := range req.Header {
			left -= len(k) + len(vs[0])
		}
		for i := 0; left > 0; i++ {
			name := fmt.Sprintf("X-Pad-%d", i)
			size := min(left-len(name), MaxHeaderValueLen)
			req.Header.Set(name, strings.Repeat("p", size))
			left -= len(name) + size
		}
		if left != 0 {
			t.Fatalf("cannot write headers of exactly %d bytes", n)
		}
		return sendHTTP(t, rec, req)
	}
	t.Run("96 KiB", func(t *testing.T) {
		if status, b, asked := send(t, MaxHeaderBytes); status != 200 || !asked {
			t.Fatalf("status %d (%s), engine asked %v; want 200 from the engine", status, b.Message, asked)
		}
	})
	t.Run("96 KiB + 1", func(t *testing.T) {
		status, b, asked := send(t, MaxHeaderBytes+1)
		want := "request headers exceed the limit of " + strconv.Itoa(MaxHeaderBytes) + " bytes in total"
		if status != 400 || b.Reason != engine.ReasonBadRequest || b.Message != want || asked {
			t.Fatalf("status %d %s %q, engine asked %v; want 400 %q before the engine", status, b.Reason, b.Message, asked, want)
		}
	})
}

// contactsRequest is GET /contacts to crm.internal with the token and
// exactly three headers: User-Agent and Accept-Encoding are set so that
// the client adds none of its own, and the tests can count to the byte.
func contactsRequest(t *testing.T, base, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", base+PathPrefix+"/contacts", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "crm.internal"
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "envoy")
	req.Header.Set("Accept-Encoding", "identity")
	return req
}

// sendHTTP sends req to the HTTP ext_authz server and returns the status,
// the deny body (zero for a 200) and whether the engine was asked.
func sendHTTP(t *testing.T, rec *recorder, req *http.Request) (int, body, bool) {
	t.Helper()
	_, before := rec.last()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_, after := rec.last()
	var b body
	if resp.StatusCode != 200 {
		b = decodeBody(t, raw)
	}
	return resp.StatusCode, b, after > before
}
