package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/bench/internal/benchproc"
)

// proc is the meshguard serve under measurement.
type proc struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpURL  string
	started  time.Time
}

// at is the time since the server started, as GODEBUG=gctrace=1 stamps
// each collection in its log (-keep): it tells which phase a collection
// ran in.
func (p *proc) at() string { return fmt.Sprintf("at %.1fs", time.Since(p.started).Seconds()) }

const adminToken = "memory-bench-admin-token-0123456789"

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) stop() { benchproc.Stop(p.cmd) }

// startServer starts meshguard serve on work's data and policies, serving
// the catalogue in services to any xDS client (loopback only).
func startServer(ctx context.Context, bin, work, services string) (*proc, error) {
	httpPort, err := benchproc.FreePort()
	if err != nil {
		return nil, err
	}
	grpcPort, err := benchproc.FreePort()
	if err != nil {
		return nil, err
	}
	p := &proc{grpcAddr: "127.0.0.1:" + strconv.Itoa(grpcPort), httpURL: "http://127.0.0.1:" + strconv.Itoa(httpPort)}
	p.cmd = exec.CommandContext(ctx, bin, "serve")
	p.cmd.Env = append(os.Environ(),
		"HOST=127.0.0.1", "PORT="+strconv.Itoa(httpPort), "GRPC_PORT="+strconv.Itoa(grpcPort),
		"DATA_DIR="+filepath.Join(work, "data"), "POLICIES_DIR="+filepath.Join(work, "policies"),
		"SERVICES_FILE="+services, "XDS_INSECURE_ALLOW_UNAUTHENTICATED=true",
		"ADMIN_TOKEN="+adminToken, "LOG_LEVEL=warn")
	// Its log goes to a file: under load a refusal is logged per Check.
	logFile, err := os.Create(filepath.Join(work, "serve.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	ready := p.httpURL + "/ready"
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
			err = fmt.Errorf("/ready: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("meshguard serve did not become ready: %w", err)
		}
		select {
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// mem is a process's memory and threads from /proc/pid/status.
type mem struct{ rssKB, hwmKB, threads int }

func (m mem) String() string {
	return fmt.Sprintf("VmRSS %.1f MB, VmHWM %.1f MB, %d threads", float64(m.rssKB)/1024, float64(m.hwmKB)/1024, m.threads)
}

func readMem(pid int) (mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return mem{}, err
	}
	var m mem
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			m.rssKB = n
		case "VmHWM":
			m.hwmKB = n
		case "Threads":
			m.threads = n
		}
	}
	return m, nil
}

// selfCPU is the CPU time (user and system) this harness has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
