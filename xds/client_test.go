package xds

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver, as a proxyless workload has it

	"github.com/meshguard/meshguard/catalog"
)

// backend is a real gRPC server on 127.0.0.1 whose health service says
// SERVING for one service name: which backend answered shows in which name
// is served.
func backend(t *testing.T, name string) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, h)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// serveXDS runs a Server on a real gRPC listener on 127.0.0.1.
func serveXDS(t testing.TB) (*Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(t.Context(), nil)
	g := grpc.NewServer(s.ServerOption())
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return s, lis.Addr().String()
}

func echoCatalogue(t testing.TB, endpoint string) *Resources {
	t.Helper()
	c, err := catalog.New([]catalog.Service{{Name: "echo", Hosts: []string{"echo.mesh"}, Port: 8080, Endpoints: []string{endpoint}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build(c, Options{ListenerPort: 10000, AuthzHost: "127.0.0.1", AuthzPort: 3101})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestProxylessGRPCClient: gRPC-Go's own xDS client — what a proxyless
// Istio workload runs — resolves xds:///echo.mesh through MeshGuard's xDS
// server, calls the backend on 127.0.0.1, and follows a live endpoint
// change to another backend. gRPC reads its bootstrap once, at package
// init, so the client runs in a child process (TestXDSChild) with the
// bootstrap in its environment.
func TestProxylessGRPCClient(t *testing.T) {
	ctx := t.Context()
	first, second := backend(t, "first"), backend(t, "second")
	s, addr := serveXDS(t)
	if err := s.Update(ctx, echoCatalogue(t, first)); err != nil {
		t.Fatal(err)
	}

	bootstrap := fmt.Sprintf(`{"xds_servers":[{"server_uri":%q,"channel_creds":[{"type":"insecure"}],"server_features":["xds_v3"]}],"node":{"id":"proxyless-test","locality":{}}}`, addr)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestXDSChild$", "-test.v")
	cmd.Env = append(os.Environ(), "MESHGUARD_XDS_CHILD=echo.mesh", "GRPC_XDS_BOOTSTRAP_CONFIG="+bootstrap)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(out)
	changed := false
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		if strings.Contains(line, "first backend answered") && !changed {
			changed = true
			if err := s.Update(ctx, echoCatalogue(t, second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cmd.Wait(); err != nil || !changed || !strings.Contains(log.String(), "second backend answered") {
		t.Fatalf("the proxyless client: %v\n%s", err, log.String())
	}
}

// TestXDSChild is the proxyless client of TestProxylessGRPCClient.
func TestXDSChild(t *testing.T) {
	target := os.Getenv("MESHGUARD_XDS_CHILD")
	if target == "" {
		t.Skip("run by TestProxylessGRPCClient in a child process")
	}
	conn, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	waitFor := func(service string) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
			cancel()
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				fmt.Printf("%s backend answered\n", service)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no answer from the %s backend: %v", service, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("first")
	waitFor("second")
}
