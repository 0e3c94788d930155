package extauthz

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/policy"
)

// envoyHTTP sends the check request Envoy's http_service builds: the
// original method, Host and allowed headers, PathPrefix + the original path.
func envoyHTTP(t *testing.T, srv string, method, host, path string, h map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv+PathPrefix+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Content-Length", "0")
	req.Header.Set("X-Envoy-Expected-Rq-Timeout-Ms", "200")
	req.Header.Set("Traceparent", traceparent)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestHTTPAllowed(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	srv := startHTTP(t, rec, testLog(t, nil))

	resp, b := envoyHTTP(t, srv.URL, "GET", "docs.internal:8080", "/docs/readme?lang=en&q=a%20b", map[string]string{
		"Authorization":   "Bearer " + m.resT,
		"X-Forwarded-For": "10.0.0.7, 10.0.0.1",
		// Forged; must be overwritten by what Envoy copies from the answer.
		engine.HeaderAgentID: m.orch.ID,
	})
	if resp.StatusCode != 200 || len(b) != 0 {
		t.Fatalf("status %d body %q", resp.StatusCode, b)
	}
	h := resp.Header
	if h.Get(engine.HeaderAgentID) != m.res.ID || h.Get(engine.HeaderAgentName) != "researcher" || h.Get(engine.HeaderTier) != "verified" ||
		h.Get(engine.HeaderChain) != m.res.ID || !strings.HasPrefix(h.Get(engine.HeaderDecisionID), "dec_") {
		t.Errorf("upstream headers: %v", h)
	}
	if h.Get(engine.HeaderDecision) != "allow" || h.Get(engine.HeaderTraceID) != traceHex || h.Get(engine.HeaderPolicy) != "researchers" {
		t.Errorf("response headers: %v", h)
	}
	if got := h.Get(HeaderAuthHeadersToRemove); got != "x-meshguard-action, x-meshguard-resource, x-meshguard-context, x-meshguard-delegation" {
		t.Errorf("%s: %q", HeaderAuthHeadersToRemove, got)
	}
	r, _ := rec.last()
	if r.Source != engine.SourceExtAuthzHTTP || r.Method != "GET" || r.Host != "docs.internal:8080" || r.Path != "/docs/readme?lang=en&q=a%20b" ||
		r.Token != m.resT || r.TraceID != traceHex || r.SourceAddress != "10.0.0.1" {
		t.Errorf("engine request: %+v", r)
	}

	// A delegation hop: the minted token goes upstream; only the steering
	// headers are removed.
	resp, _ = envoyHTTP(t, srv.URL, "POST", "researcher.mesh", "/research/x", map[string]string{"Authorization": "Bearer " + m.orchT})
	if resp.StatusCode != 200 || resp.Header.Get(engine.HeaderDelegation) == "" || resp.Header.Get(HeaderAuthHeadersToRemove) != "x-meshguard-action, x-meshguard-resource, x-meshguard-context" {
		t.Fatalf("delegation hop: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestHTTPDenials(t *testing.T) {
	m := newMesh(t, enginetest.Options{Now: fixedClock()})
	srv := startHTTP(t, m.f.Engine, testLog(t, nil))
	mail := "Bearer " + m.mailT
	tests := []struct {
		name          string
		method, path  string
		h             map[string]string
		status        int
		reason, error string
	}{
		{"no token", "GET", "/docs", nil, 401, engine.ReasonUnauthorized, "unauthorized"},
		{"bad token", "GET", "/docs", map[string]string{"Authorization": "Bearer abc.def.ghi"}, 401, engine.ReasonUnauthorized, "unauthorized"},
		{"alg none", "GET", "/docs", map[string]string{"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, 401, engine.ReasonUnauthorized, "unauthorized"},
		{"external email", "POST", "/email?to=eve@evil.test", map[string]string{"Authorization": mail}, 403, policy.ReasonRuleDeny, "forbidden"},
		{"X-MeshGuard-Context is not context", "POST", "/email?to=eve@evil.test", map[string]string{"Authorization": mail, "X-MeshGuard-Context": `{"query.to":"a@example.com"}`}, 403, policy.ReasonRuleDeny, "forbidden"},
		{"a route's action, whatever the header says", "POST", "/send/now", map[string]string{"Authorization": mail, "X-MeshGuard-Action": "read:contacts"}, 403, policy.ReasonRuleDeny, "forbidden"},
		{"a path parameter", "GET", "/docs;/private/x", map[string]string{"Authorization": mail}, 400, engine.ReasonBadRequest, "bad_request"},
		{"two credentials in one header", "GET", "/docs", map[string]string{"Authorization": mail + ", Bearer x"}, 400, engine.ReasonBadRequest, "bad_request"},
		{"40 KiB header", "GET", "/docs", map[string]string{"Authorization": mail, "Cookie": strings.Repeat("c", 40<<10)}, 400, engine.ReasonBadRequest, "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := envoyHTTP(t, srv.URL, tc.method, "smtp.internal", tc.path, tc.h)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get(engine.HeaderDecision) != "deny" {
				t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, raw)
			}
			b := decodeBody(t, raw)
			if b.Reason != tc.reason || b.Error != tc.error || b.TraceID != traceHex || resp.Header.Get(engine.HeaderAgentID) != "" {
				t.Fatalf("body %+v headers %v", b, resp.Header)
			}
		})
	}

	for range 5 {
		if resp, _ := envoyHTTP(t, srv.URL, "GET", "papers.internal", "/papers", map[string]string{"Authorization": "Bearer " + m.resT}); resp.StatusCode != 200 {
			t.Fatalf("under the limit: %d", resp.StatusCode)
		}
	}
	resp, raw := envoyHTTP(t, srv.URL, "GET", "papers.internal", "/papers", map[string]string{"Authorization": "Bearer " + m.resT})
	if b := decodeBody(t, raw); resp.StatusCode != 429 || b.Error != "rate_limited" || resp.Header.Get("Retry-After") != fmt.Sprint(b.RetryAfter) || b.RetryAfter < 1 {
		t.Fatalf("429: %d %v %s", resp.StatusCode, resp.Header, raw)
	}
}

// TestHTTPHostile: bounds, over a real connection where net/http lets the
// request through, and in-process where it would not.
func TestHTTPHostile(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	srv := startHTTP(t, rec, testLog(t, nil))
	mail := "Bearer " + m.mailT

	// 10k headers: within net/http's 1 MiB, beyond ours.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+PathPrefix+"/docs", nil)
	req.Header.Set("Authorization", mail)
	for i := range 10_000 {
		req.Header.Set(fmt.Sprintf("X-H-%05d", i), "v")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if b := decodeBody(t, raw); resp.StatusCode != 400 || !strings.Contains(b.Message, "more than 200") {
		t.Fatalf("10k headers: %d %s", resp.StatusCode, raw)
	}

	// Two Authorization headers.
	req, _ = http.NewRequestWithContext(t.Context(), "GET", srv.URL+PathPrefix+"/docs", nil)
	req.Header.Add("Authorization", mail)
	req.Header.Add("Authorization", "Bearer "+m.orchT)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(raw), "appears more than once") {
		t.Fatalf("two Authorization headers: %d %s", resp.StatusCode, raw)
	}

	// 1 MiB header: net/http refuses it first (431) on a real connection;
	// the handler on its own refuses it too.
	resp, _ = envoyHTTP(t, srv.URL, "GET", "docs", "/docs", map[string]string{"Authorization": mail, "Cookie": strings.Repeat("c", 1<<20)})
	if resp.StatusCode == 200 {
		t.Fatal("1 MiB header allowed")
	}
	h := NewHTTPHandler(rec, nil)
	r := httptest.NewRequest("POST", PathPrefix+"/docs", &noRead{t})
	r.Header.Set("Authorization", mail)
	r.Header.Set("Cookie", strings.Repeat("c", 1<<20))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 400 || !strings.Contains(w.Body.String(), `\"Cookie\" is longer than the limit`) {
		t.Fatalf("1 MiB header in-process: %d %s", w.Code, w.Body)
	}

	// An endless body is read no further than the bound, and on a route
	// declaring no protocol it changes nothing.
	endless := &endlessBody{}
	r = httptest.NewRequest("POST", PathPrefix+"/research/x", endless)
	r.Header.Set("Authorization", "Bearer "+m.orchT)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || endless.n > agentproto.MaxBody+1 {
		t.Fatalf("POST with an endless body: %d %s, %d bytes read (bound %d)", w.Code, w.Body, endless.n, agentproto.MaxBody)
	}

	// Still serving.
	if resp, _ := envoyHTTP(t, srv.URL, "GET", "docs", "/contacts", map[string]string{"Authorization": mail}); resp.StatusCode != 200 {
		t.Fatalf("after the hostile requests: %d", resp.StatusCode)
	}
}

// endlessBody is a request body that never ends; n counts what was read.
type endlessBody struct{ n int }

func (e *endlessBody) Read(p []byte) (int, error) {
	clear(p)
	e.n += len(p)
	return len(p), nil
}

// noRead is a request body that fails the test if anyone reads it.
type noRead struct{ t *testing.T }

func (n *noRead) Read([]byte) (int, error) {
	n.t.Error("the handler read the request body")
	return 0, io.EOF
}

func TestHTTPInternalFailure(t *testing.T) {
	var logs syncBuffer
	srv := startHTTP(t, failing{fmt.Errorf("%w: store: disk I/O error", engine.ErrInternal)}, testLog(t, &logs))
	resp, raw := envoyHTTP(t, srv.URL, "GET", "docs", "/docs?token=s3cret", map[string]string{"Authorization": "Bearer secret-token-value"})
	var b unavailable
	if resp.StatusCode != 503 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(raw, &b) != nil ||
		b.Error != "unavailable" || b.Message == "" || b.TraceID != traceHex {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, raw)
	}
	if out := logs.String(); !strings.Contains(out, "disk I/O error") || strings.Contains(out, "secret-token-value") || strings.Contains(out, "s3cret") {
		t.Fatalf("log: %s", out)
	}
}

// TestMount: paths reach the engine as sent, unclean ones included (the
// mux would have redirected them), and the engine refuses them; everything
// else reaches the server's mux.
func TestMount(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	srv := startHTTP(t, rec, testLog(t, nil))
	for _, path := range []string{"/docs/../admin", "//docs", "/a%2F..%2Fb", "/./x?y=/../z"} {
		resp, raw := envoyHTTP(t, srv.URL, "GET", "docs", path, map[string]string{"Authorization": "Bearer " + m.orchT})
		if r, _ := rec.last(); resp.StatusCode != 400 || r.Path != path {
			t.Errorf("%s: %d %s, engine saw %q", path, resp.StatusCode, raw, r.Path)
		}
	}
	for path, want := range map[string]int{"/health": 200, "/envoy/authzx": 404, "/envoy": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestOriginalPath(t *testing.T) {
	tests := []struct{ target, want string }{
		{"/envoy/authz/api/users?x=1", "/api/users?x=1"},
		{"/envoy/authz", "/"},
		{"/envoy/authz?x=1", "/?x=1"},
		{"/envoy/authz/", "/"},
		{"/envoy/authz/envoy/authz/x", "/envoy/authz/x"},
		{"/envoy/authzfoo", "/envoy/authzfoo"},
		{"/api/users", "/api/users"}, // mounted without the prefix
		{"/a%2Fb/../c", "/a%2Fb/../c"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", tc.target, nil)
		if got := originalPath(r); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.target, got, tc.want)
		}
	}
	// Behind http.StripPrefix: the raw request URI still has the prefix.
	var got string
	h := http.StripPrefix(PathPrefix, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = originalPath(r) }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/envoy/authz/x/y?z", nil))
	if got != "/x/y?z" {
		t.Errorf("behind StripPrefix: %q", got)
	}
}

func TestHTTPSourceAddress(t *testing.T) {
	tests := []struct{ remote, xff, want string }{
		{"127.0.0.1:5000", "203.0.113.9, 10.0.0.1", "10.0.0.1"}, // the entry the loopback proxy appended
		{"[::1]:5000", "2001:db8::7", "2001:db8::7"},
		{"127.0.0.1:5000", "not an ip", "127.0.0.1"},
		{"127.0.0.1:5000", "", "127.0.0.1"},
		{"10.1.2.3:5555", "203.0.113.9", "10.1.2.3"}, // remote peer: XFF not trusted
		{"garbage", "203.0.113.9", ""},
		{"127.0.0.1:5000", "203.0.113.9:4711", "203.0.113.9"},
	}
	for _, tc := range tests {
		if got := httpSourceAddress(tc.remote, tc.xff); got != tc.want {
			t.Errorf("%q %q: %q, want %q", tc.remote, tc.xff, got, tc.want)
		}
	}
}
