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
	shaped, full bool
}

// Check allows. With -shaped it answers with a response of the shape of
// MeshGuard's default answer — the agent id upstream, the identity headers
// it does not set removed by name, decision_id in the dynamic metadata,
// with fixed values — so the harness can tell the cost of deciding from
// the cost of carrying the answer (which the client pays too). With -full
// as well, the answer with every ANSWER_EXTRAS part.
func (a allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	ok := &authv3.OkHttpResponse{}
	resp := &authv3.CheckResponse{Status: &status.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok}}
	if !a.shaped {
		return resp, nil
	}
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	meta := map[string]string{"decision_id": "dec_0123456789abcdef01234567"}
	ok.Headers = []*corev3.HeaderValueOption{set("x-meshguard-agent-id", "agent_abcdefghijklmnopqrst")}
	ok.HeadersToRemove = []string{"x-meshguard-agent-name", "x-meshguard-tier", "x-meshguard-decision-id", "x-meshguard-chain",
		"x-meshguard-action", "x-meshguard-resource", "x-meshguard-context", "x-meshguard-delegation"}
	if a.full {
		ok.Headers = append(ok.Headers, set("x-meshguard-agent-name", "bench-agent"),
			set("x-meshguard-tier", "verified"), set("x-meshguard-decision-id", "dec_0123456789abcdef01234567"),
			set("x-meshguard-chain", "agent_abcdefghijklmnopqrst"))
		ok.HeadersToRemove = []string{"x-meshguard-action", "x-meshguard-resource", "x-meshguard-context", "x-meshguard-delegation"}
		ok.ResponseHeadersToAdd = []*corev3.HeaderValueOption{
			set("x-meshguard-decision", "allow"), set("x-meshguard-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"), set("x-meshguard-policy", "team-00"),
		}
		for k, v := range map[string]string{"agent_id": "agent_abcdefghijklmnopqrst",
			"action": "write:email", "reason": "rule_allow", "policy": "team-00", "rule": "internal-mail", "effect": "allow",
			"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"} {
			meta[k] = v
		}
	}
	fields := map[string]*structpb.Value{}
	for k, v := range meta {
		fields[k] = structpb.NewStringValue(v)
	}
	resp.DynamicMetadata = &structpb.Struct{Fields: fields}
	return resp, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3201", "listen address")
	shaped := flag.Bool("shaped", false, "answer with a response of the shape of MeshGuard's default answer (headers and metadata)")
	full := flag.Bool("full", false, "with -shaped: the answer with every ANSWER_EXTRAS part")
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, allowAll{shaped: *shaped, full: *full})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); gs.GracefulStop() }()
	if err := gs.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}
