package gateway_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/gateway"
)

// testPolicies: readers read anything but admin* and write under api/;
// "limited" agents may do anything twice a minute; orchestrators may hand
// reads on two hops; researchers read and write notes. An agent tagged otherwise is covered by no
// policy.
const testPolicies = `
name: readers
appliesTo: {tags: [reader]}
rules:
  - {name: no-admin, effect: deny, actions: ["read:admin*"]}
  - {name: no-private, effect: deny, actions: ["read:*"], conditions: {resource: {startsWith: /docs/private}}}
  - {name: reads, effect: allow, actions: ["read:*"]}
  - {name: api-writes, effect: allow, actions: ["write:api/*"]}
---
name: limited
appliesTo: {tags: [limited]}
rules:
  - {name: everything, effect: allow, actions: ["*"]}
rateLimits: {requestsPerMinute: 2}
---
name: orchestrators
appliesTo: {tags: [orchestrator]}
rules:
  - {name: work, effect: allow, actions: ["read:*", "write:*"]}
delegation: {maxDepth: 2, permissionCeiling: ["read:*"]}
---
name: researchers
appliesTo: {tags: [researcher]}
rules:
  - {name: work, effect: allow, actions: ["read:*", "write:notes/*"]}
`

// received is what the upstream saw of one request.
type received struct {
	Method, RequestURI, Path, RawQuery, Host string
	Header                                   http.Header
}

// upstream is a real HTTP server that records every request it receives.
type upstream struct {
	*httptest.Server
	mu  sync.Mutex
	got []received
}

// newUpstream starts an upstream; handle answers after the request is
// recorded (nil: drain the body and answer 200 "upstream ok").
func newUpstream(t testing.TB, handle http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	if handle == nil {
		handle = func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, "upstream ok")
		}
	}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.got = append(u.got, received{r.Method, r.RequestURI, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Clone()})
		u.mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.got...)
}

// last returns the one request the upstream received since the last call
// of last, failing the test if there was not exactly one.
func (u *upstream) last(t testing.TB) received {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) != 1 {
		t.Fatalf("upstream received %d requests, want 1", len(u.got))
	}
	r := u.got[0]
	u.got = nil
	return r
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startGateway serves a Gateway built from cfg on 127.0.0.1, mounted
// directly (so the gateway, not a ServeMux, sees every request line), and
// returns its base URL. Logger defaults to the test's output.
func startGateway(t testing.TB, cfg gateway.Config) string {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return srv.URL
}

// newClient is an HTTP client of its own, closed with the test.
func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// response is a read response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// json decodes the body as an object, failing the test if it is not JSON.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, r.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return m
}

// call sends one request with the given headers ("Name: value" lines).
func call(t testing.TB, c *http.Client, method, url string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Add(k, v)
	}
	return send(t, c, req)
}

func send(t testing.TB, c *http.Client, req *http.Request) response {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, body}
}

// raw writes a request exactly as given on a new connection and reads the
// response: for request lines an http.Client would never send.
func raw(t testing.TB, base, request string) response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, body}
}

// headerFold returns the values of every header whose name equals name in
// any case: names such as X_MeshGuard_Tier are not canonicalised.
func headerFold(h http.Header, name string) string {
	var vs []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			vs = append(vs, v...)
		}
	}
	return strings.Join(vs, ",")
}

func bearer(tok string) string { return "Authorization: Bearer " + tok }

// pattern generates n bytes of a fixed pattern without holding them:
// byte i is i % 251.
type pattern struct{ off, n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// verifier checks that what is written continues the pattern.
type verifier struct {
	off int64
	err error
}

func (v *verifier) Write(b []byte) (int, error) {
	for i, c := range b {
		if want := byte((v.off + int64(i)) % 251); c != want && v.err == nil {
			v.err = fmt.Errorf("byte %d is %d, want %d", v.off+int64(i), c, want)
		}
	}
	v.off += int64(len(b))
	return len(b), nil
}
