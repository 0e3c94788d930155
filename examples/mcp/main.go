// Command mcp is the MCP example (docs/mcp.md#try-it): an MCP server built
// with the official MCP Go SDK, serving two services over Streamable HTTP —
// mail (send_email, list_inbox) at /mail/mcp and papers (search_papers,
// delete_paper) at /papers/mcp — with everything in memory.
//
//	go run ./examples/mcp                       # serves on 127.0.0.1:3200
//	go run ./examples/mcp -walk                 # the MCP step of `make demo`
//
// With -walk it starts MeshGuard (the same server `meshguard serve` runs)
// on ports the kernel picks, with meshguard.yaml's routes in front of the
// example server, and walks agents' MCP clients through the gateway: an
// allowed tool, a denied tool, a refused argument, a filtered tool list,
// and the audit trail naming each tool. Then it stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3200", "address to serve the MCP services on (loopback)")
	walk := flag.Bool("walk", false, "run the MCP walkthrough through MeshGuard, then exit")
	policies := flag.String("policies", "examples/policies", "policy directory (with -walk)")
	cfg := flag.String("config", "examples/mcp/meshguard.yaml", "MeshGuard configuration with the MCP routes (with -walk)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *walk {
		err = runWalk(ctx, os.Stdout, walkOptions{policies: *policies, config: *cfg})
	} else {
		err = serve(ctx, *listen)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcp example:", err)
		os.Exit(1)
	}
}

// serve runs the example's MCP server until ctx ends.
func serve(ctx context.Context, addr string) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newOffice().handler(), ReadHeaderTimeout: 5 * time.Second}
	fmt.Printf("MCP example serving mail at http://%s/mail/mcp and papers at http://%s/papers/mcp\n", ln.Addr(), ln.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
