// Command meshguard is MeshGuard's single binary: the server and the CLI.
// main only wires: it hands the process's streams, environment and signals
// to package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshguard/meshguard/cli"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=…
// -X main.date=…" (Makefile, .goreleaser.yaml); a plain go build leaves
// commit and date empty, printed as "unknown".
var (
	version = "dev"
	commit  string
	date    string
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx (serve shuts down gracefully); after
	// that the default behaviour returns, so a second Ctrl-C always kills.
	go func() { <-ctx.Done(); stop() }()
	code := cli.Main(ctx, os.Args[1:], cli.Options{
		Version: version,
		Commit:  commit,
		Date:    date,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Getenv:  os.Getenv,
	})
	stop()
	os.Exit(code)
}
