package xds

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestTypeFloodEndsTheStream: a stream that names more resource types
// than any proxy asks for is ended (ResourceExhausted). Each type URL the
// node sends opens a watch: go-control-plane selects over every watch of
// a stream for each request (quadratic: 20,000 made up type URLs held a
// core for over a minute), and the shared cache keeps every watch for a
// type it does not serve, walking them all at each Update. Both delta
// and state-of-the-world streams are bounded; another stream is served
// as before.
func TestTypeFloodEndsTheStream(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, addr := serveXDS(t)
	if err := s.Update(ctx, echoCatalogue(t, "10.0.0.1:80")); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	ended := func(t *testing.T, recv func() error) error {
		t.Helper()
		errs := make(chan error, 1)
		go func() {
			for {
				if err := recv(); err != nil {
					errs <- err
					return
				}
			}
		}()
		select {
		case err := <-errs:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("the stream was not ended within 30 s of naming too many types")
		}
		return nil
	}
	t.Run("sotw", func(t *testing.T) {
		st, err := client.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 * maxStreamTypes {
			req := &discoveryv3.DiscoveryRequest{TypeUrl: fmt.Sprintf("type.googleapis.com/flood.T%d", i)}
			if i == 0 {
				req.Node = &corev3.Node{Id: "flooder"}
			}
			if st.Send(req) != nil {
				break // ended: Recv says why
			}
		}
		err = ended(t, func() error { _, err := st.Recv(); return err })
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("the stream ended with %v, want ResourceExhausted", err)
		}
	})
	t.Run("delta", func(t *testing.T) {
		st, err := client.DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 * maxStreamTypes {
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: fmt.Sprintf("type.googleapis.com/flood.T%d", i)}
			if i == 0 {
				req.Node = &corev3.Node{Id: "delta-flooder"}
			}
			if st.Send(req) != nil {
				break
			}
		}
		err = ended(t, func() error { _, err := st.Recv(); return err })
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("the stream ended with %v, want ResourceExhausted", err)
		}
	})
	t.Run("another stream", func(t *testing.T) {
		st, err := client.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "envoy"}, TypeUrl: resourcev3.ClusterType}); err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil || len(r.GetResources()) == 0 {
			t.Fatalf("clusters: %d resources, %v", len(r.GetResources()), err)
		}
	})
}
