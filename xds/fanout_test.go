package xds

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkFanOut1000: 1,000 ADS streams (in-process clients over one
// loopback connection, each its own node) hold the clusters; each
// iteration pushes a new version and waits until every stream has it and
// ACKed. Reported: the p99 and slowest time from Update to a stream's
// receipt, and the heap per stream (client and server side together).
func BenchmarkFanOut1000(b *testing.B) {
	const n = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, addr := serveXDS(b)
	version := 0
	update := func() {
		version++
		if err := s.Update(ctx, echoCatalogue(b, fmt.Sprintf("10.0.%d.%d:80", version/250, version%250+1))); err != nil {
			b.Fatal(err)
		}
	}
	update()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	streams := make([]discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, n)
	ack := func(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) error {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		return st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
	}
	for i := range streams {
		st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: fmt.Sprintf("node-%04d", i)}, TypeUrl: resourcev3.ClusterType}); err != nil {
			b.Fatal(err)
		}
		if err := ack(st); err != nil {
			b.Fatal(err)
		}
		streams[i] = st
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	var p99, slowest time.Duration
	for b.Loop() {
		lat := make([]time.Duration, n)
		var wg sync.WaitGroup
		start := time.Now()
		for i, st := range streams {
			wg.Go(func() {
				if err := ack(st); err != nil {
					b.Error(err)
				}
				lat[i] = time.Since(start)
			})
		}
		update()
		wg.Wait()
		slices.Sort(lat)
		p99, slowest = max(p99, lat[n*99/100]), max(slowest, lat[n-1])
	}
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(slowest.Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/stream")
}
