// Command demo is the live half of `make demo`: it starts MeshGuard (the
// same server `meshguard serve` runs) on its defaults with the example
// policies, registers an orchestrator, a researcher and an emailer, and
// walks a delegation chain through the Envoy ext_authz gRPC API and the
// built-in gateway — allowed calls, a ceiling denial, a depth denial, a
// revoked agent — printing every decision. Then it leaves MeshGuard running
// for you to poke at with the CLI and curl, until Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/server"
)

func main() {
	policies := flag.String("policies", "examples/policies", "policy directory")
	keep := flag.Bool("keep-running", true, "leave MeshGuard running after the walkthrough")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, options{policies: *policies, keep: *keep}); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	policies string
	keep     bool // leave MeshGuard running after the walkthrough
	anyPort  bool // listen on ports the kernel picks (tests)
	// record, if set, receives every decision the walkthrough saw (tests).
	record *[]seen
}

func run(ctx context.Context, out io.Writer, o options) error {
	data, err := os.MkdirTemp("", "meshguard-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)

	// An upstream for the gateway: it answers with what MeshGuard told it.
	up, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upstream := &http.Server{Handler: echo(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = upstream.Serve(up) }()
	defer upstream.Close()

	cfg, err := config.Load("", os.Getenv, map[string]string{
		"data-dir": filepath.Join(data, "data"), "policies-dir": o.policies,
		"proxy-target": "http://" + up.Addr().String(), "log-level": "warn",
		// The echo upstream shows who called, at which tier, for whom;
		// the tour prints the rule that decided (the dynamic metadata).
		"answer-extras": "agent-name,tier,chain,metadata",
	})
	if err != nil {
		return err
	}
	if o.anyPort {
		cfg.Port, cfg.GRPCPort = 0, 0
	}
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	var adminToken string
	go func() {
		// OTEL_* from the environment: point the demo at a tracing
		// backend and its chain shows there as a tree.
		done <- server.Run(srvCtx, cfg, server.Options{Ready: ready, Announce: func(string) {}, Getenv: os.Getenv})
	}()
	var addrs server.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		return fmt.Errorf("starting MeshGuard: %w (is something else on ports %d/%d?)", err, cfg.Port, cfg.GRPCPort)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin-token")); err == nil {
		adminToken = string(trimNewline(b))
	}

	w := &walk{out: out, http: "http://" + addrs.HTTP, grpc: addrs.GRPC, admin: adminToken}
	err = w.run(ctx)
	if o.record != nil {
		*o.record = w.seen
	}
	if err != nil {
		return err
	}
	if !o.keep {
		stopServer()
		return <-done
	}
	fmt.Fprintf(out, instructions, addrs.HTTP, addrs.GRPC, adminToken, w.tokens["emailer"], w.http, w.http)
	return <-done
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

const instructions = `
MeshGuard is still running (HTTP %s, gRPC %s) — Ctrl-C stops it.

  export MESHGUARD_ADMIN_TOKEN=%s
  export EMAILER_TOKEN=%s
  ./bin/meshguard agent list
  ./bin/meshguard policy list
  ./bin/meshguard policy test --agent emailer --action write:email --context '{"recipient":"eve@elsewhere.test"}' --verbose
  ./bin/meshguard approvals list        # the deploy's approval: used; approvals show ID for the whole request

  # the emailer through the gateway, and asking /v1/check about something it may not do
  curl -i %s/proxy/contacts -H "Authorization: Bearer $EMAILER_TOKEN"
  curl -i -X POST %s/v1/check -H "Authorization: Bearer $EMAILER_TOKEN" -H 'Content-Type: application/json' -d '{"action":"delete:contacts/42"}'
`

// echo is the demo's upstream: it shows what reached it.
func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream saw %s %s from agent %q (tier %s, chain %s)\n", r.Method, r.URL.Path,
			r.Header.Get("X-Meshguard-Agent-Name"), r.Header.Get("X-Meshguard-Tier"), r.Header.Get("X-Meshguard-Chain"))
	})
}
