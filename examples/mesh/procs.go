package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lockedWriter serialises the lines of the agents' output streams.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// proc is an agent serving on loopback.
type proc struct {
	url  string
	stop func()
}

// agentEnv is the environment of an agent's process: the caller's, less
// every MESHGUARD_* variable (an admin token in the shell stays there),
// plus the agent's own.
func agentEnv(own []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESHGUARD_") {
			env = append(env, kv)
		}
	}
	return append(env, own...)
}

func command(ctx context.Context, env []string, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = agentEnv(env)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second // then killed
	dieWithParent(cmd)
	return cmd
}

// start runs a serving agent, prints its output prefixed with its name
// (handing each line to onLine, if not nil), and returns once it printed
// "listening on URL". stop may be called more than once.
func start(ctx context.Context, out io.Writer, name, lang string, env []string, onLine func(string), prog string, args ...string) (*proc, error) {
	pctx, cancel := context.WithCancel(ctx)
	cmd := command(pctx, env, prog, args...)
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting the %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); _ = w.Close(); exited <- err }()
	listening := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				select {
				case listening <- u:
				default:
				}
				continue
			}
			if onLine != nil {
				onLine(sc.Text())
			}
			fmt.Fprintf(out, "   [%s·%s] %s\n", name, lang, sc.Text())
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	var once sync.Once
	p := &proc{stop: func() {
		once.Do(func() {
			cancel()
			<-exited
			<-copied
		})
	}}
	select {
	case p.url = <-listening:
		return p, nil
	case err := <-exited:
		exited <- err
		cancel()
		<-copied
		return nil, fmt.Errorf("the %s exited before listening: %v", name, err)
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, fmt.Errorf("the %s did not listen within a minute", name)
	}
}

// runOnce runs an agent to its end, printing its output prefixed with its
// name and handing each line to onLine; it returns the output.
func runOnce(ctx context.Context, out io.Writer, name, lang string, env []string, onLine func(string), prog string, args ...string) (string, error) {
	cmd := command(ctx, env, prog, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting the %s: %w", name, err)
	}
	var all strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		onLine(line)
		if !strings.HasPrefix(line, "RESULT ") {
			fmt.Fprintf(out, "   [%s·%s] %s\n", name, lang, line)
		}
	}
	if err := cmd.Wait(); err != nil {
		return all.String() + stderr.String(), err
	}
	return all.String(), nil
}

// buildResearcher builds the Go agent into dir.
func buildResearcher(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "researcher")
	goTool := os.Getenv("GO")
	if goTool == "" {
		goTool = "go"
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "github.com/meshguard/meshguard/examples/mesh/researcher")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", errors.Join(fmt.Errorf("building the researcher: %w", err), errors.New(string(b)))
	}
	return bin, nil
}
