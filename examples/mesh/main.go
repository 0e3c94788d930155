// Command mesh is `make mesh`: a mesh of three real agents in three
// languages, each governed by MeshGuard through its SDK. It starts MeshGuard
// (the server `meshguard serve` runs) with the policies in
// examples/mesh/policies, registers the agents, starts the emailer
// (TypeScript, node) and the researcher (Go) on loopback, and runs the
// orchestrator (Python), which hands a task to the researcher, which hands
// the report on to the emailer — each hop a delegation MeshGuard decides and
// mints, each agent asking MeshGuard before it acts for the chain. A ceiling
// denial and a revoked agent show in the same run. It prints every
// decision, then the chain as one tree (`meshguard audit trace`), and stops
// everything it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	o := options{out: os.Stdout}
	flag.StringVar(&o.policies, "policies", "examples/mesh/policies", "policy directory")
	flag.StringVar(&o.dir, "dir", "examples/mesh", "directory of orchestrator.py and emailer.mjs")
	flag.StringVar(&o.researcher, "researcher", "", "the researcher's binary (default: go build ./examples/mesh/researcher)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "mesh:", err)
		os.Exit(1)
	}
}

type options struct {
	out        io.Writer
	policies   string
	dir        string // where orchestrator.py and emailer.mjs are
	researcher string // the researcher's binary; built when empty
}
