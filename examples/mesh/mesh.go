package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/cli"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/server"
)

// outcome is what a run saw, for the test to check.
type outcome struct {
	chain   orchestration  // the orchestrator's task
	revoked orchestration  // the revoked agent's attempt
	records []audit.Record // the chain's trace, in the order written
	refused []audit.Record // the revoked agent's trace
	ids     map[string]string
	// tasks is how many tasks reached the researcher, counted from its
	// output once it stopped: the revoked agent's must not be one.
	tasks int
}

// orchestration is the orchestrator's RESULT line.
type orchestration struct {
	TraceID string `json:"traceId"`
	Steps   []struct {
		Agent, Action, Outcome, Reason string
	} `json:"steps"`
	Error *struct {
		Kind    string `json:"kind"`
		Status  int    `json:"status"`
		Reason  string `json:"reason"`
		TraceID string `json:"traceId"`
	} `json:"error"`
}

// the agents of the mesh; old-orchestrator is revoked before it calls.
// The researcher and the emailer are reached under their hosts, which the
// catalogue's services name: a call to them through the gateway hands the
// task to them, and MeshGuard mints their delegation.
var agents = []struct{ name, tier, tag, host string }{
	{"orchestrator", "trusted", "orchestrator", ""},
	{"researcher", "verified", "researcher", "researcher.mesh.test"},
	{"emailer", "verified", "emailer", "emailer.mesh.test"},
	{"old-orchestrator", "trusted", "orchestrator", ""},
}

// services is the catalogue MeshGuard's gateway routes /proxy/<name>/… by
// (PROXY_SERVICES): each agent's service, at the address it listens on,
// its task endpoints mapped to the actions MeshGuard decides each hop as.
func services(researcher, emailer string) []api.Service {
	return []api.Service{
		{Name: "researcher", Hosts: []string{"researcher.mesh.test"}, Port: 80, Endpoints: []string{researcher}, Agent: "researcher",
			Routes: []api.ServiceRoute{{Method: "POST", Path: "/tasks", Action: "write:tasks/research"}}},
		{Name: "emailer", Hosts: []string{"emailer.mesh.test"}, Port: 80, Endpoints: []string{emailer}, Agent: "emailer",
			Routes: []api.ServiceRoute{
				{Method: "POST", Path: "/send", Action: "write:email"},
				{Method: "POST", Path: "/drafts", Action: "write:notes/drafts"},
			}},
	}
}

func run(ctx context.Context, o options) (*outcome, error) {
	o.out = &lockedWriter{w: o.out}
	say := func(format string, args ...any) { fmt.Fprintf(o.out, format+"\n", args...) }
	tmp, err := os.MkdirTemp("", "meshguard-mesh-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return nil, err
	}
	if o.researcher == "" {
		say("== Building the researcher (Go)")
		if o.researcher, err = buildResearcher(ctx, tmp); err != nil {
			return nil, err
		}
	}

	cfg, err := config.Load("", os.Getenv, map[string]string{
		"data-dir": filepath.Join(tmp, "data"), "policies-dir": o.policies, "log-level": "warn",
		"proxy-services": "true", // the gateway fronts the catalogue's services
	})
	if err != nil {
		return nil, err
	}
	cfg.Port, cfg.GRPCPort = 0, 0 // loopback ports the kernel picks
	srvCtx, stopServer := context.WithCancel(ctx)
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		// OTEL_* from the environment point MeshGuard's exporter at a
		// tracing backend; the agents' traceparents make the chain one trace.
		done <- server.Run(srvCtx, cfg, server.Options{Ready: ready, Announce: func(string) {}, Getenv: os.Getenv})
	}()
	defer func() { stopServer(); <-done }()
	var addrs server.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		done <- err // for the deferred wait
		return nil, fmt.Errorf("starting MeshGuard: %w", err)
	}
	admin, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin-token"))
	if err != nil {
		return nil, fmt.Errorf("reading the admin token: %w", err)
	}
	mgURL := "http://" + addrs.HTTP
	mg, err := client.New(client.Config{BaseURL: mgURL, AdminToken: strings.TrimSpace(string(admin))})
	if err != nil {
		return nil, err
	}
	say("== MeshGuard on %s, policies %s", mgURL, o.policies)

	out := &outcome{ids: map[string]string{}}
	tokens := map[string]string{}
	say("\n== Four agents (the fourth, an orchestrator retired and revoked before it calls)")
	for _, a := range agents {
		req := api.CreateAgentRequest{Name: a.name, TrustTier: a.tier, Tags: []string{a.tag}}
		if a.host != "" {
			req.Hosts = []string{a.host}
		}
		got, err := mg.CreateAgent(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("creating %s: %w", a.name, err)
		}
		tokens[a.name], out.ids[a.name] = got.Token, got.ID
		say("   %-17s %-9s tag %-13s %-22s %s", a.name, a.tier, a.tag, a.host, got.ID)
	}
	if _, err := mg.RevokeAgent(ctx, "old-orchestrator"); err != nil {
		return nil, fmt.Errorf("revoking old-orchestrator: %w", err)
	}
	say("   old-orchestrator revoked")

	say("\n== The agents, each a process of its own on loopback")
	env := func(name string, extra ...string) []string {
		return append([]string{"MESHGUARD_URL=" + mgURL, "MESHGUARD_TOKEN=" + tokens[name]}, extra...)
	}
	emailer, err := start(ctx, o.out, "emailer", "ts", env("emailer"), nil, "node", filepath.Join(dir, "emailer.mjs"))
	if err != nil {
		return nil, err
	}
	defer emailer.stop()
	tasks := 0 // written by the researcher's output reader, read once it stopped
	researcher, err := start(ctx, o.out, "researcher", "go", env("researcher"), func(line string) {
		if strings.HasPrefix(line, "task received") {
			tasks++
		}
	}, o.researcher)
	if err != nil {
		return nil, err
	}
	defer researcher.stop()
	say("   emailer (TypeScript) on %s, researcher (Go) on %s", emailer.url, researcher.url)
	say("\n== The service catalogue: MeshGuard's gateway fronts both (%s/proxy/<service>/…)", mgURL)
	for _, s := range services(strings.TrimPrefix(researcher.url, "http://"), strings.TrimPrefix(emailer.url, "http://")) {
		if _, err := mg.PutService(ctx, s); err != nil {
			return nil, fmt.Errorf("putting service %s: %w", s.Name, err)
		}
		for _, r := range s.Routes {
			say("   %-10s %s → agent %s: %s %s → %s", s.Name, s.Endpoints[0], s.Agent, r.Method, r.Path, r.Action)
		}
	}

	orchestrator := filepath.Join(dir, "orchestrator.py")
	say("\n== The orchestrator (Python) hands a survey to the researcher, which hands the report to the emailer, each hop through the gateway")
	if out.chain, err = orchestrate(ctx, o.out, "orchestrator", env("orchestrator"), orchestrator); err != nil {
		return nil, err
	}
	say("\n== The revoked orchestrator tries the same")
	if out.revoked, err = orchestrate(ctx, o.out, "old-orchestrator", env("old-orchestrator"), orchestrator); err != nil {
		return nil, err
	}
	researcher.stop() // all its output read: tasks is final
	out.tasks = tasks
	say("   the researcher received %d task(s)", out.tasks)

	// The chain: the orchestrator's hop, the researcher's read and hop,
	// the emailer's send, and the researcher's refused hop to the drafts.
	if out.records, err = awaitTrace(ctx, mg, out.chain.TraceID, 5); err != nil {
		return nil, err
	}
	if out.revoked.Error == nil {
		return nil, errors.New("the revoked orchestrator was not refused")
	}
	if out.refused, err = awaitTrace(ctx, mg, out.revoked.Error.TraceID, 1); err != nil {
		return nil, err
	}
	names := map[string]string{}
	for n, id := range out.ids {
		names[id] = n
	}
	say("\n== Every decision, as MeshGuard recorded it (audit trail)")
	for _, r := range append(out.records, out.refused...) {
		who := r.AgentName
		if who == "" {
			who = "(no agent)" // refused before it was one: a revoked token names none
		}
		say("   %-12s %-26s %-5s %-3d %-22s chain %s", who, r.Action, strings.ToUpper(r.Decision), r.Status, r.Reason, chainOf(r.Chain, names))
	}
	auditEnv := map[string]string{"MESHGUARD_GATEWAY_URL": mgURL, "MESHGUARD_ADMIN_TOKEN": strings.TrimSpace(string(admin))}
	say("\n== The chain as one tree (meshguard audit trace %s)", out.chain.TraceID)
	if code := cli.Main(ctx, []string{"audit", "trace", out.chain.TraceID}, cli.Options{Stdout: o.out, Stderr: o.out, Getenv: func(k string) string { return auditEnv[k] }}); code != 0 {
		return nil, fmt.Errorf("meshguard audit trace: exit %d", code)
	}
	return out, nil
}

// orchestrate runs orchestrator.py as agent name and reads its RESULT line.
func orchestrate(ctx context.Context, log io.Writer, name string, env []string, script string) (orchestration, error) {
	var res orchestration
	var result string
	lines, err := runOnce(ctx, log, name, "py", env, func(line string) {
		if s, ok := strings.CutPrefix(line, "RESULT "); ok {
			result = s
		}
	}, "python3", script)
	if err != nil {
		return res, fmt.Errorf("%s: %w\n%s", name, err, lines)
	}
	if result == "" {
		return res, fmt.Errorf("%s printed no RESULT line\n%s", name, lines)
	}
	if err := json.Unmarshal([]byte(result), &res); err != nil {
		return res, fmt.Errorf("%s's RESULT: %w", name, err)
	}
	return res, nil
}

// awaitTrace waits for at least n records of the trace: the audit trail
// writes them in batches, so the last may land a moment after the answer.
func awaitTrace(ctx context.Context, mg *client.Client, traceID string, n int) ([]audit.Record, error) {
	if traceID == "" {
		return nil, errors.New("the orchestrator reported no trace id")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		t, err := mg.AuditTrace(ctx, traceID)
		if err == nil && len(t.Records) >= n {
			return t.Records, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("trace %s: %d audit records, want %d (%v)", traceID, len(t.Records), n, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func chainOf(ids []string, names map[string]string) string {
	if len(ids) == 0 {
		return "-"
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = names[id]
		if out[i] == "" {
			out[i] = id
		}
	}
	return strings.Join(out, " → ")
}
