// Command memory measures what `meshguard serve` holds in memory at the
// scale docs/performance.md's "Memory" section states (make bench-memory):
// it builds meshguard, seeds a data directory with agents (through the
// store package) and a policy directory with rules, starts the server with
// a service catalogue, and reads its VmRSS and VmHWM fresh; then opens
// ADS streams, each on its own gRPC connection (an Envoy each), waits until
// every stream holds its clusters, endpoints, listeners and routes, reads
// the memory again, edits the catalogue and reports how long the change
// took to reach every stream (p50, p99, max) and the CPU it cost the
// server and the harness (which share the cores), and then sends Checks for a
// while with the streams still open and reads the memory under load. The
// harness is a separate process: its own memory is not counted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/meshguard/meshguard/bench/internal/benchproc"
)

type options struct {
	agents   int
	rules    int
	streams  int
	services int
	bin      string
	keep     bool
	hold     time.Duration
	load     time.Duration
	workers  int
}

func main() {
	var o options
	flag.IntVar(&o.agents, "agents", 10000, "agents seeded in the store")
	flag.IntVar(&o.rules, "rules", 10000, "rules across the generated policies (100 a policy)")
	flag.IntVar(&o.streams, "streams", 1000, "ADS streams, each on its own connection")
	flag.IntVar(&o.services, "services", 20, "services in the catalogue")
	flag.StringVar(&o.bin, "meshguard", "", "a meshguard binary to measure (default: build one from this checkout)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	flag.DurationVar(&o.load, "load", 10*time.Second, "then send Checks this long, streams still open (0: none)")
	flag.IntVar(&o.workers, "c", 50, "concurrent Checks during the load, over one connection as an Envoy sends them")
	flag.DurationVar(&o.hold, "hold", 0, "keep the server and streams up this long at the end (to profile the server)")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "meshguard-memory-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	}
	if o.bin == "" {
		o.bin = filepath.Join(work, "meshguard")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.bin, "./cmd/meshguard")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building meshguard: %w", err)
		}
	}
	start := time.Now()
	if err := seedAgents(ctx, filepath.Join(work, "data"), o.agents); err != nil {
		return err
	}
	if err := writePolicies(filepath.Join(work, "policies"), o.rules); err != nil {
		return err
	}
	services := filepath.Join(work, "services", "services.yaml")
	if err := writeServices(services, o.services, 1); err != nil {
		return err
	}
	fmt.Printf("seeded %d agents, %d rules, %d services in %v\n", o.agents, o.rules, o.services, time.Since(start).Round(time.Millisecond))

	p, err := startServer(ctx, o.bin, work, services)
	if err != nil {
		return err
	}
	defer p.stop()
	fresh, err := readMem(p.pid())
	if err != nil {
		return err
	}
	fmt.Printf("serving, no streams:  %s (%s)\n", fresh, p.at())

	m := newMesh(o.streams)
	defer m.close()
	start = time.Now()
	if err := m.open(ctx, p.grpcAddr); err != nil {
		return err
	}
	v0, err := m.waitAll(ctx, "", 2*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("%d streams hold version %s (opened in %v)\n", o.streams, v0, time.Since(start).Round(time.Millisecond))
	held, err := readMem(p.pid())
	if err != nil {
		return err
	}
	fmt.Printf("with %d streams:    %s  (%.1f KB RSS a stream; %s)\n", o.streams, held, float64(held.rssKB-fresh.rssKB)/float64(o.streams), p.at())

	// The CPU the push costs each side: the harness shares the machine's
	// cores with the server, so its own work shows in the latencies.
	cpu0, err := benchproc.CPUTime(p.pid())
	if err != nil {
		return err
	}
	self0 := selfCPU()
	changed := time.Now()
	fmt.Printf("catalogue edited %s\n", p.at())
	if err := writeServices(services, o.services, 2); err != nil {
		return err
	}
	if _, err := m.waitAll(ctx, v0, time.Minute); err != nil {
		return err
	}
	lat := m.latencies(changed)
	cpu1, err := benchproc.CPUTime(p.pid())
	if err != nil {
		return err
	}
	self1 := selfCPU()
	fmt.Printf("a catalogue edit reached all %d streams: p50 %v, p99 %v, max %v (from the file's write; the watch gathers changes for 100 ms)\n",
		o.streams, lat.p50, lat.p99, lat.max)
	fmt.Printf("the push's CPU: server %v, harness %v\n", cpu1-cpu0, (self1 - self0).Round(time.Millisecond))
	after, err := readMem(p.pid())
	if err != nil {
		return err
	}
	fmt.Printf("after the push:       %s (%s)\n", after, p.at())
	if o.load > 0 {
		token, err := createAgent(ctx, p)
		if err != nil {
			return err
		}
		fmt.Printf("Checks begin %s\n", p.at())
		n, refused, err := load(ctx, p.grpcAddr, token, o.workers, o.load)
		if err != nil {
			return fmt.Errorf("checks: %w", err)
		}
		loaded, err := readMem(p.pid())
		if err != nil {
			return err
		}
		fmt.Printf("after %v of Checks (c=%d, %.0f/s answered, failed: %v; audit on): %s (%s)\n", o.load, o.workers, float64(n)/o.load.Seconds(), refused, loaded, p.at())
	}
	if o.hold > 0 {
		fmt.Printf("holding for %v: server pid %d\n", o.hold, p.pid())
		time.Sleep(o.hold)
	}
	return nil
}
