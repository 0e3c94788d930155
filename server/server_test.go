package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/engine"
)

const readerPolicy = `name: readers
appliesTo: {tags: [reader]}
rules:
  - {name: reads, effect: allow, actions: ["read:*"]}
`

type running struct {
	addrs  Addrs
	cfg    *config.Config
	cancel context.CancelFunc
	done   chan error
	out    *strings.Builder
	admin  *client.Client
	grpc   *grpc.ClientConn
}

// start runs the server in-process on loopback ports chosen by the kernel.
func start(t *testing.T, mutate func(*config.Config)) *running {
	t.Helper()
	return run(t, configWith(t, mutate))
}

// configWith is the test configuration: loopback ports chosen by the
// kernel, a temporary data and policies directory with readerPolicy.
func configWith(t *testing.T, mutate func(*config.Config)) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port, cfg.GRPCPort = 0, 0
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.PoliciesDir = filepath.Join(dir, "policies")
	if err := os.MkdirAll(cfg.PoliciesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writePolicy(t, cfg, "readers.yaml", readerPolicy)
	cfg.ProxyAuth.ProxiesFile = writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken})
	if mutate != nil {
		mutate(cfg)
	}
	return cfg
}

func run(t *testing.T, cfg *config.Config) *running { return runWith(t, cfg, Options{}) }

// runWith runs the server with o, whose Ready, Announce, KeyReload and
// RevokedReload it sets (the timers far off: what a test sees arrived by
// the change feed).
func runWith(t *testing.T, cfg *config.Config, o Options) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cfg: cfg, cancel: cancel, done: make(chan error, 1), out: &strings.Builder{}}
	ready := make(chan Addrs, 1)
	o.Ready, o.KeyReload, o.RevokedReload = ready, time.Hour, time.Hour
	o.Announce = func(s string) { r.out.WriteString(s + "\n") }
	go func() {
		r.done <- Run(ctx, cfg, o)
	}()
	select {
	case r.addrs = <-ready:
	case err := <-r.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start in 10 s")
	}
	t.Cleanup(func() { r.stop(t) })
	r.connect(t)
	return r
}

// connect makes r's admin and gRPC clients of the server ready at r.addrs.
func (r *running) connect(t *testing.T) {
	t.Helper()
	cfg := r.cfg
	token := cfg.AdminToken
	if token == "" {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, adminTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		token = strings.TrimSpace(string(b))
	}
	admin, err := client.New(client.Config{BaseURL: "http://" + r.addrs.HTTP, AdminToken: token})
	if err != nil {
		t.Fatal(err)
	}
	r.admin = admin
	conn, err := grpc.NewClient(r.addrs.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	r.grpc = conn
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
		r.done <- nil // later stops return at once
	case <-time.After(30 * time.Second):
		t.Error("server did not stop in 30 s")
	}
}

func writePolicy(t *testing.T, cfg *config.Config, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cfg.PoliciesDir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *running) agent(t *testing.T, name string, tags ...string) string {
	t.Helper()
	a, err := r.admin.CreateAgent(context.Background(), api.CreateAgentRequest{Name: name, TrustTier: "verified", Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	return a.Token
}

// check sends a CheckRequest as Envoy builds it.
func (r *running) check(t *testing.T, token, method, path string) *authv3.CheckResponse {
	t.Helper()
	resp, err := authv3.NewAuthorizationClient(r.grpc).Check(context.Background(), checkRequest(token, method, path))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// checkRequest is a CheckRequest as Envoy builds it.
func checkRequest(token, method, path string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Host: "docs.internal", Path: path,
			Headers: map[string]string{"authorization": "Bearer " + token, ":path": path, ":method": method,
				"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	}, Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: "10.0.0.9", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}}}}
}

func TestServeEndToEnd(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.Header.Get(engine.HeaderAgentName))
	}))
	t.Cleanup(upstream.Close)
	// The upstream reads the agent's name and the caller the trace id:
	// both asked for (ANSWER_EXTRAS), which serve wires to the engine.
	r := start(t, func(c *config.Config) {
		c.ProxyTarget = upstream.URL
		c.Answer = engine.AnswerAgentName | engine.AnswerResponseHeaders
	})
	if !strings.Contains(r.out.String(), "Generated an admin token") {
		t.Fatalf("the generated admin token was not announced: %q", r.out.String())
	}
	if st, err := os.Stat(filepath.Join(r.cfg.DataDir, adminTokenFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v %v", st, err)
	}
	reader := r.agent(t, "reader", "reader")

	// ext_authz over gRPC.
	if resp := r.check(t, reader, "GET", "/docs/a"); codes.Code(resp.GetStatus().GetCode()) != codes.OK || resp.GetOkResponse() == nil {
		t.Fatalf("read: %v", resp)
	}
	if resp := r.check(t, reader, "DELETE", "/docs/a"); codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
		t.Fatalf("delete: %v", resp)
	}
	if resp := r.check(t, "not-a-token", "GET", "/docs/a"); resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("bad token: %v", resp)
	}

	// The gateway forwards what the engine allows.
	req, _ := http.NewRequest("GET", "http://"+r.addrs.HTTP+"/proxy/docs/a", nil)
	req.Header.Set("Authorization", "Bearer "+reader)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "hello reader" || res.Header.Get("X-MeshGuard-Trace-Id") == "" {
		t.Fatalf("gateway: %d %q", res.StatusCode, body)
	}

	// Health and reflection on the gRPC port.
	h, err := healthpb.NewHealthClient(r.grpc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(r.grpc).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := stream.Recv()
	if err != nil || !strings.Contains(rr.String(), "envoy.service.auth.v3.Authorization") {
		t.Fatalf("reflection: %v %v", rr, err)
	}
	_ = stream.CloseSend()
}

func TestHotReloadKeepsLastGood(t *testing.T) {
	r := start(t, nil)
	reader := r.agent(t, "reader", "reader")
	deny := func() int32 {
		return int32(r.check(t, reader, "POST", "/docs/a").GetDeniedResponse().GetStatus().GetCode())
	}
	if c := deny(); c != 403 {
		t.Fatalf("write before the new policy: %d", c)
	}
	writePolicy(t, r.cfg, "writers.yaml", "name: writers\nappliesTo: {tags: [reader]}\nrules:\n  - {name: writes, effect: allow, actions: [\"write:docs/*\"]}\n")
	eventually(t, "the new policy to apply", func() bool { return r.check(t, reader, "POST", "/docs/a").GetOkResponse() != nil })

	writePolicy(t, r.cfg, "broken.yaml", "name: broken\nrules: [{effect: alow, actions: ['x:y']}]\n")
	eventually(t, "/ready to report the broken file", func() bool {
		st, err := r.admin.Ready(context.Background())
		return err != nil && st.Status == "not_ready"
	})
	if r.check(t, reader, "POST", "/docs/a").GetOkResponse() == nil {
		t.Fatal("a broken file replaced the last good policy set")
	}
	if err := os.Remove(filepath.Join(r.cfg.PoliciesDir, "broken.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/ready to recover", func() bool {
		st, err := r.admin.Ready(context.Background())
		return err == nil && st.Status == "ready"
	})
}

// TestGracefulShutdownFinishesInFlight: a request the gateway is
// forwarding when shutdown begins is answered in full: the server stops
// taking connections (its listener is closed) yet lets the request finish
// (a server that closed its connections instead fails here), and Run does
// not return meanwhile (checked once the listener is closed: a Run that
// skips the wait is caught only when it has returned by then).
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(arrived) // the one request of this test
		<-release
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(upstream.Close)
	var once sync.Once
	letGo := func() { once.Do(func() { close(release) }) }
	t.Cleanup(letGo) // before upstream.Close, which waits for the handler
	// The upstream reads the agent's name and the caller the trace id:
	// both asked for (ANSWER_EXTRAS), which serve wires to the engine.
	r := start(t, func(c *config.Config) {
		c.ProxyTarget = upstream.URL
		c.Answer = engine.AnswerAgentName | engine.AnswerResponseHeaders
	})
	reader := r.agent(t, "reader", "reader")
	result := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+r.addrs.HTTP+"/proxy/docs/slow", nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- err.Error()
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			result <- err.Error()
			return
		}
		result <- string(b)
	}()
	select {
	case <-arrived: // the request is in flight, waiting upstream
	case got := <-result:
		t.Fatalf("the request ended before it reached the upstream: %q", got)
	}

	r.cancel()
	// Shutdown has begun once the HTTP listener is closed: a new
	// connection is refused.
	eventually(t, "the HTTP listener closed", func() bool {
		c, err := net.Dial("tcp", r.addrs.HTTP)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	})
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup's stop
		t.Fatalf("Run returned (%v) with a request in flight", err)
	default:
	}
	letGo()
	if got := <-result; got != "done" {
		t.Fatalf("in-flight request during shutdown: %q", got)
	}
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil
}

func TestSecondStartKeepsTheAdminToken(t *testing.T) {
	r := start(t, nil)
	cfg := *r.cfg
	r.stop(t)
	again := run(t, &cfg)
	if strings.Contains(again.out.String(), "Generated") {
		t.Fatal("a second start generated a new admin token")
	}
	if _, err := again.admin.ListAgents(context.Background(), client.AgentFilter{}); err != nil {
		t.Fatalf("the stored admin token no longer works: %v", err)
	}
}

func TestStartupErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load("", nil, nil)
	cfg.Port, cfg.GRPCPort, cfg.DataDir, cfg.PoliciesDir = 0, 0, filepath.Join(dir, "data"), file
	if err := Run(context.Background(), cfg, Options{}); err == nil || !strings.Contains(err.Error(), "POLICIES_DIR") {
		t.Fatalf("policies dir is a file: %v", err)
	}
	cfg.PoliciesDir = dir
	cfg.Routes = []engine.Route{{Path: "no-slash", Action: "read:x"}}
	if err := Run(context.Background(), cfg, Options{}); err == nil || !strings.Contains(err.Error(), "routes[0].path") {
		t.Fatalf("bad route: %v", err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGatewayPathsAreNotRedirected: the gateway takes its paths before the
// mux, whose redirects (for "/proxy" or "/a/../b") would reach the caller
// undecided.
func TestGatewayPathsAreNotRedirected(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(upstream.Close)
	// The upstream reads the agent's name and the caller the trace id:
	// both asked for (ANSWER_EXTRAS), which serve wires to the engine.
	r := start(t, func(c *config.Config) {
		c.ProxyTarget = upstream.URL
		c.Answer = engine.AnswerAgentName | engine.AnswerResponseHeaders
	})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{"/proxy": 401, "/proxy/a/../b": 400, "/proxy/a//b": 400} {
		req, _ := http.NewRequest("GET", "http://"+r.addrs.HTTP+path, nil)
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want %d JSON", path, res.StatusCode, res.Header.Get("Content-Type"), want)
		}
	}
}

// TestLaterStartSaysWhereTheAdminTokenIs: the generated admin token is
// shown once; a later start with the same DATA_DIR names the file that
// holds it, and never prints the token again.
func TestLaterStartSaysWhereTheAdminTokenIs(t *testing.T) {
	r := start(t, nil)
	cfg := r.cfg
	token := r.adminToken(t)
	r.stop(t)
	again := run(t, cfg)
	out := again.out.String()
	if want := "The admin token is in " + filepath.Join(cfg.DataDir, adminTokenFile); !strings.Contains(out, want) {
		t.Fatalf("a later start printed %q; want it to say %q", out, want)
	}
	if strings.Contains(out, token) || strings.Contains(out, "Generated an admin token") {
		t.Fatalf("a later start showed the admin token again: %q", out)
	}
}
