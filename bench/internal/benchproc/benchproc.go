// Package benchproc holds what the whole-system benchmark commands
// (bench/loadtest, bench/memory) share to run a server as a child
// process on loopback: a free port, stopping it, creating an agent
// through its admin API, and reading the CPU it has used.
package benchproc

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
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

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// CPUTime is the CPU time (user and system) process pid has used, from
// /proc/pid/stat.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	d, err := statCPU(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return d, nil
}

// statCPU reads utime and stime from a /proc/pid/stat line.
func statCPU(b []byte) (time.Duration, error) {
	// The fields after the command name, which is in parentheses and may
	// hold spaces and parentheses: utime and stime are the 12th and 13th.
	i := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b[i+1:]))
	if i < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("unexpected %q", b)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}
