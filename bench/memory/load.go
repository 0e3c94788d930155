package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/meshguard/meshguard/bench/internal/benchproc"
)

// createAgent registers the agent the Checks come from and returns its token.
func createAgent(ctx context.Context, p *proc) (string, error) {
	return benchproc.CreateAgent(ctx, p.httpURL, adminToken, `{"name":"load-agent","trustTier":"verified","tags":["bench","team-00"]}`)
}

// load sends Envoy-shaped Checks from workers goroutines over one
// connection for d, and returns how many were answered and how many
// failed, by code. A failure (fail closed: the audit store behind, an
// internal deadline) is an answer too: counted apart, it does not stop the
// load.
func load(ctx context.Context, addr, token string, workers int, d time.Duration) (int64, map[codes.Code]int64, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	req := checkRequest(token)
	end := time.Now().Add(d)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	// over says the load's time is up. ctx.Err() alone is not enough: it
	// turns non-nil only when the context's timer has run, and on a busy
	// machine gRPC fails calls at the deadline before that, so a worker
	// looping on ctx.Err() counted thousands of instant DeadlineExceeded
	// "failures" after the end.
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(end) }
	var ok atomic.Int64
	var mu sync.Mutex
	failed := map[codes.Code]int64{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for !over() {
				_, err := client.Check(ctx, req)
				switch {
				case err == nil:
					ok.Add(1)
				case !over():
					mu.Lock()
					failed[status.Code(err)]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return ok.Load(), failed, nil
}

// checkRequest is an Envoy-shaped CheckRequest for a catalogued route.
func checkRequest(token string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.1.2.4", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1234", Method: "GET", Host: "svc-00.mesh:8080", Path: "/docs/readme", Protocol: "HTTP/1.1",
			Headers: map[string]string{
				":authority": "svc-00.mesh:8080", ":method": "GET", ":path": "/docs/readme",
				"authorization": "Bearer " + token, "user-agent": "agent-sdk/1.0",
				"x-request-id": "d6f1a1c2-1111-2222-3333-444455556666",
			},
		}},
	}}
}
