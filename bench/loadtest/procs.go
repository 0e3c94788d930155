package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/bench/internal/benchproc"
)

// proc is a server under test.
type proc struct {
	name     string
	cmd      *exec.Cmd
	grpcAddr string
	httpURL  string
	admin    string
}

func (p *proc) stop() { benchproc.Stop(p.cmd) }

func startNoop(ctx context.Context, bin string, shaped bool) (*proc, error) {
	port, err := benchproc.FreePort()
	if err != nil {
		return nil, err
	}
	p := &proc{name: "no-op ext_authz", grpcAddr: "127.0.0.1:" + strconv.Itoa(port)}
	args := []string{"-addr", p.grpcAddr}
	if shaped {
		p.name = "no-op, MeshGuard-shaped answer"
		args = append(args, "-shaped")
	}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	return p, waitFor(ctx, 10*time.Second, func() error {
		c, err := net.Dial("tcp", p.grpcAddr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// startMeshGuard writes n policies and starts `meshguard serve` on them,
// with its own data directory under work/name and env added.
func startMeshGuard(ctx context.Context, bin, work, name string, n int, env ...string) (*proc, error) {
	pdir := filepath.Join(work, "policies")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return nil, err
	}
	for i := range n {
		doc := fmt.Sprintf(`name: team-%02d
appliesTo: {tags: [team-%02d, bench]}
rules:
  - {name: no-deletes, effect: deny, actions: ["delete:*"]}
  - name: internal-mail
    effect: allow
    actions: ["write:email"]
    conditions: {context: {query.to: {matches: "*@example.com"}}}
  - {name: reads-%02d, effect: allow, actions: ["read:team-%02d/*", "read:shared/*"]}
defaultEffect: deny
`, i, i, i, i)
		if err := os.WriteFile(filepath.Join(pdir, fmt.Sprintf("team-%02d.yaml", i)), []byte(doc), 0o644); err != nil {
			return nil, err
		}
	}
	httpPort, err := benchproc.FreePort()
	if err != nil {
		return nil, err
	}
	grpcPort, err := benchproc.FreePort()
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, grpcAddr: "127.0.0.1:" + strconv.Itoa(grpcPort),
		httpURL: "http://127.0.0.1:" + strconv.Itoa(httpPort), admin: "loadtest-admin-token-0123456789"}
	p.cmd = exec.CommandContext(ctx, bin, "serve")
	p.cmd.Env = append(os.Environ(),
		"HOST=127.0.0.1", "PORT="+strconv.Itoa(httpPort), "GRPC_PORT="+strconv.Itoa(grpcPort),
		"DATA_DIR="+filepath.Join(work, name), "POLICIES_DIR="+pdir,
		"ADMIN_TOKEN="+p.admin, "LOG_LEVEL=warn")
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	return p, waitFor(ctx, 20*time.Second, func() error {
		resp, err := http.Get(p.httpURL + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/ready: %s", resp.Status)
		}
		return nil
	})
}

// createAgent registers the benchmark's agent and returns its token.
func (p *proc) createAgent(ctx context.Context) (string, error) {
	return benchproc.CreateAgent(ctx, p.httpURL, p.admin, `{"name":"bench-agent","trustTier":"verified","tags":["bench"]}`)
}

// checkRequestJSON is the CheckRequest both servers get, as Envoy builds it.
func checkRequestJSON(token string) string {
	req := map[string]any{"attributes": map[string]any{
		"source":      map[string]any{"address": map[string]any{"socketAddress": map[string]any{"address": "10.1.2.3", "portValue": 51234}}},
		"destination": map[string]any{"address": map[string]any{"socketAddress": map[string]any{"address": "10.1.2.4", "portValue": 8080}}},
		"request": map[string]any{"http": map[string]any{
			"id": "1234", "method": "POST", "host": "mail.internal:8080", "path": "/email?draft=false&to=team@example.com", "protocol": "HTTP/1.1",
			"headers": map[string]string{
				":authority": "mail.internal:8080", ":method": "POST", ":path": "/email?draft=false&to=team@example.com",
				"authorization": "Bearer " + token,
				"content-type":  "application/json",
				"user-agent":    "agent-sdk/1.0",
				"traceparent":   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				"x-request-id":  "d6f1a1c2-1111-2222-3333-444455556666",
			},
		}},
	}}
	b, _ := json.Marshal(req)
	return string(b)
}
