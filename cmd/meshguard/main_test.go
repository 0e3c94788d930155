package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// TestSIGTERMUnderLoad runs the real binary, keeps ext_authz Checks in
// flight, and sends SIGTERM: the process must exit 0, and every Check must
// either complete with an answer or be refused as Unavailable — never cut
// off half-way or answered with anything else.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "meshguard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	httpPort, grpcPort := freePort(t), freePort(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT="+strconv.Itoa(httpPort), "GRPC_PORT="+strconv.Itoa(grpcPort),
		"DATA_DIR="+filepath.Join(dir, "data"), "POLICIES_DIR="+filepath.Join(dir, "policies"), "LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(base + "/health")
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}

	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "x", Path: "/x", Headers: map[string]string{"authorization": "Bearer x"}}}}}

	var mu sync.Mutex
	answered, refused := 0, 0
	var bad []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := client.Check(ctx, req)
				cancel()
				mu.Lock()
				switch {
				case err == nil && resp.GetDeniedResponse().GetStatus().GetCode() == 401:
					answered++
				case status.Code(err) == codes.Unavailable:
					refused++
				default:
					bad = append(bad, err)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("no exit within 25 s of SIGTERM")
	}
	close(stop)
	wg.Wait()
	if answered == 0 || len(bad) > 0 {
		t.Fatalf("answered %d, refused %d, other outcomes %v", answered, refused, bad)
	}

	// Every decision given was recorded before the process exited, and
	// the trail verifies.
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "data", "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v := audit.NewVerifier(audit.GenesisHash)
	records := 0
	if err := db.ScanAudit(context.Background(), func(r audit.Record) error { records++; return v.Next(&r) }); err != nil {
		t.Fatal(err)
	}
	if records != answered {
		t.Fatalf("%d audit records for %d decisions", records, answered)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
