// Command loadtest is MeshGuard's whole-system benchmark (make bench-load).
// It installs ghz, builds meshguard and the no-op ext_authz server, starts
// both on loopback, and drives each with the same realistic CheckRequest
// (an EdDSA agent token, ~30 policies) at the same concurrency in the same
// run. For each it prints requests per second, p50/p99 latency and the
// server's CPU time per Check (from /proc before and after), and the
// ratios MeshGuard/no-op: on a 2-core machine ghz itself competes for the
// CPU, so the ratios, not the absolute numbers, are what count.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

const ghzVersion = "v0.120.0"

type options struct {
	rounds      int
	concurrency int
	requests    int
	warmup      int
	policies    int
	rps         int
	keep        bool
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "measure each server this many times, alternating, and report medians")
	flag.IntVar(&o.concurrency, "c", 50, "ghz concurrency")
	flag.IntVar(&o.requests, "n", 40000, "requests per target")
	flag.IntVar(&o.warmup, "warmup", 4000, "warm-up requests per target (not measured)")
	flag.IntVar(&o.policies, "policies", 30, "number of generated policies")
	flag.IntVar(&o.rps, "rps", 0, "fixed request rate per server (0: as fast as it answers, which saturates the machine)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "meshguard-loadtest-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	}
	ghz, err := ensureGHZ(ctx, root)
	if err != nil {
		return err
	}
	bins := filepath.Join(work, "bin")
	for _, b := range []struct{ out, pkg string }{{"meshguard", "./cmd/meshguard"}, {"noop", "./bench/noop"}} {
		if err := goCmd(ctx, root, "build", "-o", filepath.Join(bins, b.out), b.pkg); err != nil {
			return err
		}
	}
	protoset := filepath.Join(work, "authz.protoset")
	if err := goCmd(ctx, root, "run", "./bench/protoset", "-o", protoset); err != nil {
		return err
	}

	mg, err := startMeshGuard(ctx, filepath.Join(bins, "meshguard"), work, "MeshGuard", o.policies)
	if err != nil {
		return err
	}
	defer mg.stop()
	token, err := mg.createAgent(ctx)
	if err != nil {
		return err
	}
	// The same server with its audit trail off: the floor for the audit
	// writer's cost. It has its own database, so its own agent and token.
	quiet, err := startMeshGuard(ctx, filepath.Join(bins, "meshguard"), work, "MeshGuard, audit off", o.policies, "AUDIT_ENABLED=false")
	if err != nil {
		return err
	}
	defer quiet.stop()
	quietToken, err := quiet.createAgent(ctx)
	if err != nil {
		return err
	}
	noop, err := startNoop(ctx, filepath.Join(bins, "noop"), false)
	if err != nil {
		return err
	}
	defer noop.stop()
	shaped, err := startNoop(ctx, filepath.Join(bins, "noop"), true)
	if err != nil {
		return err
	}
	defer shaped.stop()

	// Alternate the servers round by round: the machine's background load
	// drifts, and alternating spreads the drift over all of them.
	procs := []*proc{noop, mg, shaped, quiet}
	reqs := []string{checkRequestJSON(token), checkRequestJSON(token), checkRequestJSON(token), checkRequestJSON(quietToken)}
	runs := make([][]result, len(procs))
	for round := range max(o.rounds, 1) {
		for i, t := range procs {
			r, err := measure(ctx, ghz, protoset, t, reqs[i], o, round == 0)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			runs[i] = append(runs[i], r)
		}
	}
	medians := make([]result, len(runs))
	for i := range runs {
		medians[i] = median(runs[i])
	}
	report(os.Stdout, medians, o)
	return nil
}

// repoRoot finds the module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the meshguard module")
		}
		dir = parent
	}
}

// ensureGHZ installs ghz into bench/.bin once (idempotent).
func ensureGHZ(ctx context.Context, root string) (string, error) {
	bin := filepath.Join(root, "bench", ".bin")
	path := filepath.Join(bin, "ghz")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	fmt.Fprintf(os.Stderr, "installing ghz %s into %s (once)…\n", ghzVersion, bin)
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/bojand/ghz/cmd/ghz@"+ghzVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("installing ghz: %w", err)
	}
	return path, nil
}

func goCmd(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v: %w", args, err)
	}
	return nil
}

// waitFor polls fn until it succeeds or the deadline passes.
func waitFor(ctx context.Context, d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
