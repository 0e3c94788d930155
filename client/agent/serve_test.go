package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
)

// meshguardBin is the meshguard binary: MESHGUARD_BIN, or one built from
// this module into a temporary directory.
func meshguardBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("MESHGUARD_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "meshguard")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/meshguard")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building meshguard: %v\n%s", err, out)
	}
	return bin
}

// served is a running `meshguard serve`.
type served struct {
	url        string
	admin      *client.Client
	adminToken string
}

// serve starts `meshguard serve` on loopback ports the kernel picks, with
// the policies of dir, and waits until it is ready.
func serve(t *testing.T, policiesDir string) served {
	t.Helper()
	bin := meshguardBin(t)
	policies, err := filepath.Abs(policiesDir)
	if err != nil {
		t.Fatal(err)
	}
	const adminToken = "conformance-admin-token-0123456789"
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT="+freePort(t), "GRPC_PORT="+freePort(t), "LOG_FORMAT=json",
		"DATA_DIR="+t.TempDir(), "POLICIES_DIR="+policies, "ADMIN_TOKEN="+adminToken)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting meshguard serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	var logTail strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "meshguard serving" {
				addr <- rec.HTTP
				break
			}
			if logTail.Len() < 16<<10 {
				logTail.WriteString(sc.Text() + "\n")
			}
		}
		_, _ = io.Copy(io.Discard, stderr) // keep serve's log from blocking it
		close(addr)
	}()
	s := served{adminToken: adminToken}
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("meshguard serve stopped before serving:\n%s", logTail.String())
		}
		s.url = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatal("meshguard serve logged no \"meshguard serving\" in 60s")
	}
	s.admin, err = client.New(client.Config{BaseURL: s.url, AdminToken: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	// Ready: policies loaded and a signing key; polled, as it will be.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := s.admin.Ready(t.Context())
		if err == nil && st.Status == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("meshguard serve not ready in 30s: %v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// createAgent registers an agent and returns it with its token.
func (s served) createAgent(t *testing.T, name, tier string, tags []string) api.AgentWithToken {
	t.Helper()
	a, err := s.admin.CreateAgent(t.Context(), api.CreateAgentRequest{Name: name, TrustTier: tier, Tags: tags})
	if err != nil {
		t.Fatalf("creating agent %s: %v", name, err)
	}
	return a
}

// freePort is a loopback port free a moment ago: serve refuses PORT=0
// (config.go holds a port to 1..65535), and reports the port it took in
// its "meshguard serving" line, which is what the runner reads.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
