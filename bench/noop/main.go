// Command noop is the floor of the ext_authz benchmark: an Envoy
// Authorization server that allows every request without looking at it.
// It runs in the same harness as MeshGuard so the two can be compared on
// the same machine in the same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
)

type allowAll struct {
	authv3.UnimplementedAuthorizationServer
	shaped bool
}

// Check allows. With -shaped it answers with a response of MeshGuard's
// shape — the same upstream and response headers and dynamic metadata,
// with fixed values — so the harness can tell the cost of deciding from the
// cost of carrying a richer answer (which the client pays too).
func (a allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	ok := &authv3.OkHttpResponse{}
	resp := &authv3.CheckResponse{Status: &status.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok}}
	if !a.shaped {
		return resp, nil
	}
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	ok.Headers = []*corev3.HeaderValueOption{
		set("x-meshguard-agent-id", "agent_abcdefghijklmnopqrst"), set("x-meshguard-agent-name", "bench-agent"),
		set("x-meshguard-tier", "verified"), set("x-meshguard-decision-id", "dec_0123456789abcdef01234567"),
		set("x-meshguard-chain", "agent_abcdefghijklmnopqrst"),
	}
	ok.HeadersToRemove = []string{"x-meshguard-delegation"}
	ok.ResponseHeadersToAdd = []*corev3.HeaderValueOption{
		set("x-meshguard-decision", "allow"), set("x-meshguard-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"), set("x-meshguard-policy", "team-00"),
	}
	fields := map[string]*structpb.Value{}
	for k, v := range map[string]string{"decision_id": "dec_0123456789abcdef01234567", "agent_id": "agent_abcdefghijklmnopqrst",
		"action": "write:email", "reason": "rule_allow", "policy": "team-00", "rule": "internal-mail", "effect": "allow",
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"} {
		fields[k] = structpb.NewStringValue(v)
	}
	resp.DynamicMetadata = &structpb.Struct{Fields: fields}
	return resp, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3201", "listen address")
	shaped := flag.Bool("shaped", false, "answer with a response of MeshGuard's shape (headers and metadata)")
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, allowAll{shaped: *shaped})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); gs.GracefulStop() }()
	if err := gs.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}
