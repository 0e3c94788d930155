package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshguard/meshguard/internal/envoysub"
)

// mesh is n Envoy-like ADS clients, each on its own connection.
type mesh struct {
	conns []*grpc.ClientConn
	wg    sync.WaitGroup

	mu      sync.Mutex
	changed *sync.Cond
	// version and at are each stream's last endpoints version and when it
	// arrived.
	version []string
	at      []time.Time
	err     error
}

func newMesh(n int) *mesh {
	m := &mesh{version: make([]string, n), at: make([]time.Time, n)}
	m.changed = sync.NewCond(&m.mu)
	return m
}

// open dials every stream and starts its receive loop.
func (m *mesh) open(ctx context.Context, addr string) error {
	for i := range m.version {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		m.conns = append(m.conns, conn)
		st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		node := &corev3.Node{Id: fmt.Sprintf("envoy-%04d", i), Cluster: "bench"}
		for _, t := range envoysub.Wildcard {
			if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: t}); err != nil {
				return fmt.Errorf("stream %d: %w", i, err)
			}
			node = nil // only the first request carries the node
		}
		m.wg.Go(func() { m.receive(i, st) })
	}
	return nil
}

// receive ACKs every response, asks for endpoints and routes by name as
// the clusters and listeners it holds name them, and notes when the
// endpoints change.
func (m *mesh) receive(i int, st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) {
	sub := envoysub.New()
	for {
		resp, err := st.Recv()
		if err == nil {
			err = sub.Answer(resp, st.Send)
		}
		if err != nil {
			m.mu.Lock()
			if m.err == nil {
				m.err = fmt.Errorf("stream %d: %w", i, err)
			}
			m.changed.Broadcast()
			m.mu.Unlock()
			return
		}
		if resp.GetTypeUrl() != resourcev3.EndpointType {
			continue
		}
		m.mu.Lock()
		m.version[i], m.at[i] = resp.GetVersionInfo(), time.Now()
		m.changed.Broadcast()
		m.mu.Unlock()
	}
}

// waitAll waits until every stream holds one endpoints version other than
// old (and than none) and returns it.
func (m *mesh) waitAll(ctx context.Context, old string, d time.Duration) (string, error) {
	timer := time.AfterFunc(d, func() {
		m.mu.Lock()
		if m.err == nil {
			m.err = fmt.Errorf("not every stream was served within %v", d)
		}
		m.changed.Broadcast()
		m.mu.Unlock()
	})
	defer timer.Stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if m.err != nil {
			return "", m.err
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		v := m.version[0]
		all := v != "" && v != old
		for _, w := range m.version {
			all = all && w == v
		}
		if all {
			return v, nil
		}
		m.changed.Wait()
	}
}

type spread struct{ p50, p99, max time.Duration }

// latencies are the streams' times from since to their last endpoints.
func (m *mesh) latencies(since time.Time) spread {
	m.mu.Lock()
	lat := make([]time.Duration, len(m.at))
	for i, t := range m.at {
		lat[i] = t.Sub(since).Round(time.Millisecond)
	}
	m.mu.Unlock()
	slices.Sort(lat)
	n := len(lat)
	return spread{lat[n/2], lat[n*99/100], lat[n-1]}
}

func (m *mesh) close() {
	for _, c := range m.conns {
		c.Close()
	}
	m.wg.Wait()
}
