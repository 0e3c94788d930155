package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/identity"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The trace every realistic request carries, and the id it names.
const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceHex    = "4bf92f3577b34da6a3ce929d0e0e4736"
)

// mesh is the shared delegation mesh of package enginetest, with fields
// named as this package's tests use them.
type mesh struct {
	f                  *enginetest.Fixture
	orch, res, mail    identity.Agent
	orchT, resT, mailT string
}

// routes maps POST /send/* to write:email, so a header can try to relabel it.
var routes = []engine.Route{{Method: "POST", Path: "/send/*", Action: "write:email"}}

// newMesh's engine renders the whole answer (engine.AnswerAll) unless
// opts names parts: these tests check every part of it. The default
// answer is TestGRPCDefaultAnswer's.
func newMesh(t testing.TB, opts enginetest.Options) *mesh {
	t.Helper()
	if opts.Routes == nil {
		opts.Routes = routes
	}
	if opts.Answer == 0 {
		opts.Answer = engine.AnswerAll
	}
	em := enginetest.NewMesh(t, opts)
	return &mesh{f: em.F, orch: em.Orch, res: em.Res, mail: em.Mail, orchT: em.OrchT, resT: em.ResT, mailT: em.MailT}
}

// fixedClock is a clock that does not move, so rate-limit windows do not
// roll over mid-test.
func fixedClock() func() time.Time {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	return func() time.Time { return now }
}

// testLog logs to the test's output, and to buf if given.
func testLog(t testing.TB, buf *syncBuffer) *slog.Logger {
	if buf != nil {
		return slog.New(slog.NewJSONHandler(buf, nil))
	}
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startGRPC serves the Authorization service for c on a loopback port and
// returns a client over a real connection.
func startGRPC(t testing.TB, c Checker, log *slog.Logger) authv3.AuthorizationClient {
	t.Helper()
	return startServer(t, NewServer(c, log))
}

// startServer serves s on a loopback port and returns a client of it.
func startServer(t testing.TB, s *Server) authv3.AuthorizationClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	s.Register(gs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
		<-done
	})
	return authv3.NewAuthorizationClient(conn)
}

// startHTTP serves the HTTP handler for c as the server mounts it, in
// front of a mux with a route of its own.
func startHTTP(t testing.TB, c Checker, log *slog.Logger) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := httptest.NewServer(Mount(mux, NewHTTPHandler(c, log)))
	t.Cleanup(srv.Close)
	return srv
}

// call describes one request through Envoy.
type call struct {
	method, host, path string
	token              string            // sent as "Bearer <token>" if set
	headers            map[string]string // more request headers, lower-case
	ext                map[string]string // per-route context_extensions
	noTrace            bool              // send no traceparent
}

// envoyCheck builds a CheckRequest the way Envoy's ext_authz filter does for
// an HTTP/1.1 request reaching a sidecar: pseudo headers in the headers map,
// the peer and local socket addresses, the request time.
func envoyCheck(c call) *authv3.CheckRequest {
	h := map[string]string{
		":authority":            c.host,
		":method":               c.method,
		":path":                 c.path,
		":scheme":               "http",
		"user-agent":            "research-agent/1.4 (+python-httpx)",
		"accept":                "application/json",
		"x-forwarded-proto":     "http",
		"x-request-id":          "6f1b6c1e-6e63-4a53-9a8e-0b1a2f4c9d11",
		"x-envoy-attempt-count": "1",
	}
	if !c.noTrace {
		h["traceparent"] = traceparent
	}
	if c.token != "" {
		h["authorization"] = "Bearer " + c.token
	}
	for k, v := range c.headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: sockAddr("10.0.0.7", 49152), Principal: "spiffe://mesh.local/ns/agents/sa/caller"},
		Destination: &authv3.AttributeContext_Peer{Address: sockAddr("10.0.0.9", 8080)},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "1751413298722401832", Method: c.method, Headers: h, Path: c.path, Host: c.host,
				Scheme: "http", Protocol: "HTTP/1.1",
			},
		},
		ContextExtensions: c.ext,
	}}
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func check(t testing.TB, c authv3.AuthorizationClient, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// headerMap flattens HeaderValueOptions, failing on any that would append.
func headerMap(t testing.TB, hs []*corev3.HeaderValueOption) map[string]string {
	t.Helper()
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s: append action %v, want OVERWRITE_IF_EXISTS_OR_ADD", h.GetHeader().GetKey(), h.GetAppendAction())
		}
		if _, dup := m[h.GetHeader().GetKey()]; dup {
			t.Errorf("header %s set twice", h.GetHeader().GetKey())
		}
		m[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return m
}

// body is a decoded deny body.
type body struct {
	Error      string `json:"error"`
	Message    string `json:"message"`
	Reason     string `json:"reason"`
	Policy     string `json:"policy"`
	Rule       string `json:"rule"`
	Action     string `json:"action"`
	TraceID    string `json:"trace_id"`
	DecisionID string `json:"decision_id"`
	RetryAfter int    `json:"retry_after"`
}

func decodeBody(t testing.TB, b []byte) body {
	t.Helper()
	var out body
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("deny body %q: %v", b, err)
	}
	if out.Error == "" || out.Message == "" {
		t.Fatalf("deny body without error or message: %s", b)
	}
	return out
}

// recorder is a Checker that remembers the last request it was asked about.
type recorder struct {
	c  Checker
	mu sync.Mutex
	r  engine.Request
	n  int
}

func (rc *recorder) Check(ctx context.Context, r *engine.Request) (engine.Decision, error) {
	rc.mu.Lock()
	rc.r, rc.n = *r, rc.n+1
	rc.mu.Unlock()
	return rc.c.Check(ctx, r)
}

func (rc *recorder) last() (engine.Request, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.r, rc.n
}

// failing is a Checker whose store is down.
type failing struct{ err error }

func (f failing) Check(context.Context, *engine.Request) (engine.Decision, error) {
	return engine.Decision{}, f.err
}

// Answer passes on the engine's (answerer), so a request refused before
// the engine renders as it would without the recorder.
func (rc *recorder) Answer() engine.Answer {
	if a, ok := rc.c.(answerer); ok {
		return a.Answer()
	}
	return 0
}
