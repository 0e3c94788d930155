// Package benchproc holds what the whole-system benchmark commands
// (bench/loadtest, bench/memory) share to run a server as a child
// process on loopback: a free port, stopping it, and creating an agent
// through its admin API.
package benchproc

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// FreePort asks the kernel for an unused loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop interrupts cmd's process and waits for it, killing it after 10 s.
// A command that never started is left alone.
func Stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
	}
}

// CreateAgent registers an agent (agentJSON, as POST /admin/agents takes
// it) with the server at httpURL and returns its token.
func CreateAgent(ctx context.Context, httpURL, adminToken, agentJSON string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, httpURL+"/admin/agents", strings.NewReader(agentJSON))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Admin-Token", adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("creating the agent: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusCreated || out.Token == "" {
		return "", fmt.Errorf("creating the agent: %s", resp.Status)
	}
	return out.Token, nil
}
