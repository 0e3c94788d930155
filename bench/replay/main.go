// Command replay measures `meshguard policy replay` on a large trail
// (make bench-replay; docs/performance.md): it fills a SQLite DATA_DIR with
// realistic records — decided by the recorded policies, so each holds the
// decision those policies give, sealed into a valid chain by the audit
// writer — then runs the meshguard binary's replay over it with candidate
// policies and reports the wall time and the child's peak RSS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

const recorded = `
name: mail
appliesTo: {tags: [mailer]}
rules:
  - name: external
    effect: deny
    actions: ["call:mail/send_email"]
    conditions: {context: {arguments.to: {not_matches: "*@ours.example"}}}
  - {name: calls, effect: allow, actions: ["call:mail/*"]}
  - {name: reads, effect: allow, actions: ["read:*"]}
delegation: {maxDepth: 2}
---
name: ops
appliesTo: {tags: [ops]}
rules:
  - name: office-hours
    effect: allow
    actions: ["write:*"]
    conditions: {time: {between: "08:00-18:00", timezone: Europe/Berlin}}
  - {name: reads, effect: allow, actions: ["read:*"]}
---
name: planners
appliesTo: {tags: [planner]}
rules:
  - {name: all, effect: allow, actions: ["read:*", "write:*", "call:*"]}
delegation: {maxDepth: 2}
`

// candidate shortens office hours and denies delegated secret reads.
const candidate = `
name: mail
appliesTo: {tags: [mailer]}
rules:
  - name: external
    effect: deny
    actions: ["call:mail/send_email"]
    conditions: {context: {arguments.to: {not_matches: "*@ours.example"}}}
  - name: no-delegated-secrets
    effect: deny
    actions: ["read:secret/*"]
    conditions: {chain: {root: [planner-*]}}
  - {name: calls, effect: allow, actions: ["call:mail/*"]}
  - {name: reads, effect: allow, actions: ["read:*"]}
delegation: {maxDepth: 2}
---
name: ops
appliesTo: {tags: [ops]}
rules:
  - name: office-hours
    effect: allow
    actions: ["write:*"]
    conditions: {time: {between: "09:00-17:00", timezone: Europe/Berlin}}
  - {name: reads, effect: allow, actions: ["read:*"]}
---
name: planners
appliesTo: {tags: [planner]}
rules:
  - {name: all, effect: allow, actions: ["read:*", "write:*", "call:*"]}
delegation: {maxDepth: 2}
`

func main() {
	n := flag.Int("records", 1_000_000, "records to fill the trail with")
	dir := flag.String("dir", "", "DATA_DIR to fill (a new temporary one if empty; an existing trail is reused)")
	bin := flag.String("meshguard", "bin/meshguard", "the meshguard binary to time")
	flag.Parse()
	if err := run(context.Background(), *n, *dir, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "bench/replay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int, dir, bin string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "meshguard-replay-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	pdir := filepath.Join(dir, "candidate")
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pdir, "candidate.yaml"), []byte(candidate), 0o600); err != nil {
		return err
	}
	db := filepath.Join(dir, "meshguard.db")
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		start := time.Now()
		if err := fill(ctx, db, n); err != nil {
			return err
		}
		st, _ := os.Stat(db)
		fmt.Printf("filled %d records in %s (%d MB on disk)\n", n, time.Since(start).Round(time.Millisecond), st.Size()>>20)
	}
	cmd := exec.CommandContext(ctx, bin, "policy", "replay", "--policies", pdir, "--data-dir", dir, "--json", "--quiet")
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	wall := time.Since(start)
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	var rss int64
	if ru != nil {
		rss = ru.Maxrss // KiB on Linux
	}
	fmt.Printf("replay of %d records: wall %s, %.0f records/s, user %s, sys %s, peak RSS %d MB\n", n, wall.Round(time.Millisecond),
		float64(n)/wall.Seconds(), cmd.ProcessState.UserTime().Round(time.Millisecond), cmd.ProcessState.SystemTime().Round(time.Millisecond), rss>>10)
	return nil
}

// agent is one of the mesh's agents.
type agent struct {
	id, name string
	tier     trust.Tier
	tags     []string
}

// fill writes n records, decided by the recorded policies, through the
// audit writer (group commit), so the trail is a valid chain.
func fill(ctx context.Context, path string, n int) error {
	s, err := store.OpenSQLite(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	pfile := filepath.Join(filepath.Dir(path), "recorded.yaml")
	if err := os.WriteFile(pfile, []byte(recorded), 0o600); err != nil {
		return err
	}
	set, err := policy.Load(ctx, policy.File(pfile))
	if err != nil {
		return err
	}
	w, err := audit.NewWriter(ctx, s, audit.WriterConfig{FlushInterval: 20 * time.Millisecond, MaxBatch: 4096, MaxLag: time.Hour,
		Arguments: audit.ArgumentsConfig{Record: true}})
	if err != nil {
		return err
	}
	var agents []agent
	for i := range 60 {
		a := agent{id: fmt.Sprintf("agent_%020d", i), tier: trust.Verified}
		switch i % 3 {
		case 0:
			a.name, a.tags = "mailer-"+strconv.Itoa(i), []string{"mailer"}
		case 1:
			a.name, a.tags, a.tier = "ops-"+strconv.Itoa(i), []string{"ops"}, trust.Trusted
		default:
			a.name, a.tags, a.tier = "planner-"+strconv.Itoa(i), []string{"planner"}, trust.Trusted
		}
		agents = append(agents, a)
	}
	start := time.Now().UTC().Add(-7 * 24 * time.Hour)
	step := 7 * 24 * time.Hour / time.Duration(n)
	for i := range n {
		a := agents[i%len(agents)]
		at := start.Add(time.Duration(i) * step)
		in := policy.Input{Agent: policy.Subject{ID: a.id, Name: a.name, Tier: a.tier, Tags: a.tags, Active: true}, Time: at}
		rec := audit.Record{ID: fmt.Sprintf("aud_%012x%08x", at.UnixMilli(), i), Timestamp: at, TraceID: fmt.Sprintf("%032x", i),
			SpanID: fmt.Sprintf("%016x", i), DecisionID: fmt.Sprintf("dec_%012x%08x", at.UnixMilli(), i), AgentID: a.id, AgentName: a.name,
			TrustTier: a.tier.String(), Source: "gateway", SourceAddress: "10.0.0.7", Mode: "enforce", LatencyUs: 40}
		ri := &audit.Inputs{Tags: a.tags}
		switch i % 5 {
		case 0, 1: // a tool call, its argument read
			to := "ann@ours.example"
			if i%7 == 0 {
				to = "eve@evil.example"
			}
			in.Action, in.Resource = "call:mail/send_email", "/mcp"
			in.Context = map[string]any{"arguments.to": to}
			rec.Method, rec.Path = "POST", "/mcp"
			rec.Call = &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "1"}
			rec.Call.SetArguments([]byte(`{"to":"` + to + `","subject":"weekly report","body":"see the attached numbers"}`))
		case 2: // a write, in or out of office hours
			in.Action, in.Resource = "write:deploy", "/deploy"
			rec.Method, rec.Path = "POST", "/deploy"
		default: // a read, a fifth of them delegated by a planner
			in.Action, in.Resource = "read:secret/plan", "/secret/plan"
			rec.Method, rec.Path = "GET", "/secret/plan"
			if i%10 == 3 {
				p := agents[2]
				in.Chain = []policy.Subject{{ID: p.id, Name: p.name, Tier: p.tier, Tags: p.tags, Active: true}}
				ri.Chain = []audit.ChainMember{{Name: p.name, Tier: p.tier.String(), Tags: p.tags}}
			}
		}
		d := set.Evaluate(&in)
		rec.Action, rec.Resource, rec.Context, rec.Inputs = in.Action, in.Resource, in.Context, ri
		rec.Decision, rec.Reason, rec.Policy, rec.Rule, rec.PolicyRevision = string(d.Effect), d.Reason, d.Policy, d.Rule, d.Revision
		rec.Status = 200
		if !d.Allowed() {
			rec.Status = 403
		}
		for _, c := range in.Chain {
			rec.Chain = append(rec.Chain, c.ID)
		}
		rec.Chain = append(rec.Chain, a.id)
		rec.DelegationDepth = len(rec.Chain) - 1
		if err := w.Write(ctx, rec); err != nil {
			return err
		}
	}
	return w.Close(ctx)
}
