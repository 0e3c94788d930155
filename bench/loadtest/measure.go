package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/bench/internal/benchproc"
)

type result struct {
	name       string
	rps        float64
	p50, p99   time.Duration
	cpuPerCall time.Duration
	ok, total  int
}

// ghzReport is the part of ghz's JSON output we read.
type ghzReport struct {
	Count         int            `json:"count"`
	Rps           float64        `json:"rps"`
	StatusCodes   map[string]int `json:"statusCodeDistribution"`
	LatencyDistri []struct {
		Percentage int   `json:"percentage"`
		Latency    int64 `json:"latency"`
	} `json:"latencyDistribution"`
}

// ghzArgs runs n requests at concurrency c, as fast as they go or, with
// rps > 0, at that rate.
func ghzArgs(ghz, protoset string, p *proc, req string, c, n, rps int) *exec.Cmd {
	args := []string{"--insecure", "--protoset", protoset,
		"--call", "envoy.service.auth.v3.Authorization/Check",
		"-d", req, "-c", strconv.Itoa(c), "-n", strconv.Itoa(n), "--format", "json"}
	if rps > 0 {
		args = append(args, "--rps", strconv.Itoa(rps))
	}
	return exec.Command(ghz, append(args, p.grpcAddr)...)
}

func measure(ctx context.Context, ghz, protoset string, p *proc, req string, o options, warm bool) (result, error) {
	if warm {
		if err := ghzArgs(ghz, protoset, p, req, o.concurrency, o.warmup, o.rps).Run(); err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	before, err := benchproc.CPUTime(p.cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	cmd := ghzArgs(ghz, protoset, p, req, o.concurrency, o.requests, o.rps)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("ghz: %w", err)
	}
	after, err := benchproc.CPUTime(p.cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	var rep ghzReport
	if err := json.NewDecoder(io.LimitReader(&out, 64<<20)).Decode(&rep); err != nil {
		return result{}, fmt.Errorf("reading ghz output: %w", err)
	}
	r := result{name: p.name, rps: rep.Rps, ok: rep.StatusCodes["OK"], total: rep.Count}
	for _, l := range rep.LatencyDistri {
		switch l.Percentage {
		case 50:
			r.p50 = time.Duration(l.Latency)
		case 99:
			r.p99 = time.Duration(l.Latency)
		}
	}
	if rep.Count > 0 {
		r.cpuPerCall = (after - before) / time.Duration(rep.Count)
	}
	return r, nil
}

// median takes each figure's median over the rounds (counts are summed).
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out := result{name: rs[0].name}
	out.rps = pick(func(r result) float64 { return r.rps })
	out.p50 = time.Duration(pick(func(r result) float64 { return float64(r.p50) }))
	out.p99 = time.Duration(pick(func(r result) float64 { return float64(r.p99) }))
	out.cpuPerCall = time.Duration(pick(func(r result) float64 { return float64(r.cpuPerCall) }))
	for _, r := range rs {
		out.ok += r.ok
		out.total += r.total
	}
	return out
}

func report(w io.Writer, rs []result, o options) {
	rate := "as fast as each server answers"
	if o.rps > 0 {
		rate = fmt.Sprintf("at a fixed %d requests/s", o.rps)
	}
	fmt.Fprintf(w, "\nghz -c %d -n %d per round, %s, %d rounds alternating, medians (after %d warm-up requests), %d policies\n\n",
		o.concurrency, o.requests, rate, o.rounds, o.warmup, o.policies)
	fmt.Fprintf(w, "| server | OK / total | rps | p50 | p99 | server CPU per Check |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d / %d | %.0f | %s | %s | %s |\n", r.name, r.ok, r.total, r.rps,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.cpuPerCall.Round(time.Microsecond))
	}
	ratio := func(label string, floor, mg result, targets bool) {
		if floor.rps == 0 || floor.p99 == 0 || floor.cpuPerCall == 0 {
			return
		}
		t := func(s string) string {
			if targets {
				return " (target " + s + ")"
			}
			return ""
		}
		fmt.Fprintf(w, "\nMeshGuard / %s: rps %.2f×%s, p99 %.2f×%s, CPU per Check %.2f×%s\n", label,
			mg.rps/floor.rps, t("≥ 0.8"), float64(mg.p99)/float64(floor.p99), t("≤ 1.3"),
			float64(mg.cpuPerCall)/float64(floor.cpuPerCall), t("≤ 1.5"))
	}
	if len(rs) >= 2 {
		ratio("no-op", rs[0], rs[1], true)
	}
	if len(rs) >= 3 {
		ratio("no-op with MeshGuard's answer shape", rs[2], rs[1], false)
	}
	if len(rs) >= 4 && rs[3].p99 > 0 && rs[3].cpuPerCall > 0 {
		fmt.Fprintf(w, "\nMeshGuard / MeshGuard with the audit trail off: rps %.2f×, p99 %.2f× (target ≤ 1.10), CPU per Check %.2f×\n",
			rs[1].rps/rs[3].rps, float64(rs[1].p99)/float64(rs[3].p99), float64(rs[1].cpuPerCall)/float64(rs[3].cpuPerCall))
	}
}
