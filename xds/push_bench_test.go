package xds

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/internal/envoysub"
)

// pushCatalogue is bench/memory's catalogue: n services of two endpoints
// and two routes; gen changes every endpoint.
func pushCatalogue(b testing.TB, n, gen int) *Resources {
	b.Helper()
	svcs := make([]catalog.Service, n)
	for i := range svcs {
		svcs[i] = catalog.Service{Name: fmt.Sprintf("svc-%02d", i), Hosts: []string{fmt.Sprintf("svc-%02d.mesh", i)}, Port: 8080,
			Endpoints: []string{fmt.Sprintf("10.%d.%d.1:8080", gen%250, i), fmt.Sprintf("10.%d.%d.2:8080", gen%250, i)},
			Routes:    []catalog.Route{{Method: "POST", Path: "/tasks", Action: "write:tasks"}, {Method: "GET", Path: "/docs/*", Action: "read:docs"}}}
	}
	c, err := catalog.New(svcs)
	if err != nil {
		b.Fatal(err)
	}
	r, err := Build(c, Options{ListenerPort: 10000, AuthzHost: "127.0.0.1", AuthzPort: 3101})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkPush1000: what bench/memory's push costs the server, in
// process: 1,000 ADS streams, each on its own connection over 127.0.0.1
// and holding clusters, endpoints, listeners and routes of a 20-service
// catalogue (as an Envoy does); each iteration changes every endpoint
// and waits until every stream has ACKed all four types. The streams
// subscribe wildcard to all four types (wildcard), or as Envoy does
// (envoy: clusters and listeners whole, endpoints and routes by the names
// those give, as bench/memory's do). Reported: the
// bytes allocated per stream and push (client and server together: run
// with -memprofile to split them), the heap in use at its highest during
// the push (sampled), and the p99 from Update to a stream's endpoints.
// With PUSH_HEAPPROFILE=FILE it writes heap profiles after setup
// (FILE.setup), before each push (FILE.held) and at a collection right
// after Update (FILE): `go tool pprof -base FILE.held` shows what a push
// holds.
func BenchmarkPush1000(b *testing.B) {
	b.Run("wildcard", func(b *testing.B) { benchPush(b, false) })
	b.Run("envoy", func(b *testing.B) { benchPush(b, true) })
}

// pushStream is one benchmark stream and how it answers a response.
type pushStream struct {
	st     discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	answer func(*discoveryv3.DiscoveryResponse) error
}

// openPushStream opens a stream on conn and asks for the four types:
// wildcard, or as envoysub's Envoy does.
func openPushStream(ctx context.Context, conn *grpc.ClientConn, id string, envoy bool) (*pushStream, error) {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	p := &pushStream{st: st}
	types := []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}
	if envoy {
		sub := envoysub.New()
		p.answer = func(r *discoveryv3.DiscoveryResponse) error { return sub.Answer(r, st.Send) }
		types = envoysub.Wildcard
	} else {
		p.answer = func(r *discoveryv3.DiscoveryResponse) error {
			return st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()})
		}
	}
	node := &corev3.Node{Id: id}
	for _, t := range types {
		if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: t}); err != nil {
			return nil, err
		}
		node = nil
	}
	return p, nil
}

// all receives and answers one response of each of the four types; at
// is when the endpoints came.
func (p *pushStream) all() (at time.Time, err error) {
	for range 4 {
		resp, err := p.st.Recv()
		if err != nil {
			return at, err
		}
		if err := p.answer(resp); err != nil {
			return at, err
		}
		if resp.GetTypeUrl() == resourcev3.EndpointType {
			at = time.Now()
		}
	}
	return at, nil
}

func benchPush(b *testing.B, envoy bool) {
	const n, services = 1000, 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, addr := serveXDS(b)
	gen := 1
	if err := s.Update(ctx, pushCatalogue(b, services, gen)); err != nil {
		b.Fatal(err)
	}
	streams := make([]*pushStream, n)
	for i := range streams {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		st, err := openPushStream(ctx, conn, fmt.Sprintf("envoy-%04d", i), envoy)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.all(); err != nil {
			b.Fatal(err)
		}
		streams[i] = st
	}
	var peak, total, live, held uint64
	var p99 time.Duration
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	if f := os.Getenv("PUSH_HEAPPROFILE"); f != "" {
		if w, err := os.Create(f + ".setup"); err == nil {
			runtime.GC()
			_ = pprof.Lookup("heap").WriteTo(w, 0)
			w.Close()
		}
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		held = max(held, before.HeapAlloc)
		if f := os.Getenv("PUSH_HEAPPROFILE"); f != "" {
			if w, err := os.Create(f + ".held"); err == nil {
				_ = pprof.Lookup("heap").WriteTo(w, 0)
				w.Close()
			}
		}
		b.StartTimer()
		lat := make([]time.Duration, n)
		var wg sync.WaitGroup
		start := time.Now()
		for i, st := range streams {
			wg.Go(func() {
				at, err := st.all()
				if err != nil {
					b.Error(err)
				}
				lat[i] = at.Sub(start)
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		gen++
		if err := s.Update(ctx, pushCatalogue(b, services, gen)); err != nil {
			b.Fatal(err)
		}
		// A collection as the push goes out, as one ran in bench/memory:
		// what it finds live is what sets the heap's next goal.
		runtime.GC()
		var during runtime.MemStats
		runtime.ReadMemStats(&during)
		live = max(live, during.HeapAlloc)
		if f := os.Getenv("PUSH_HEAPPROFILE"); f != "" {
			if w, err := os.Create(f); err == nil {
				_ = pprof.Lookup("heap").WriteTo(w, 0)
				w.Close()
			}
		}
		tick := time.NewTicker(time.Millisecond)
	wait:
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				break wait
			case <-tick.C:
			}
		}
		tick.Stop()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		total += after.TotalAlloc - before.TotalAlloc
		slices.Sort(lat)
		p99 = max(p99, lat[n*99/100])
	}
	b.ReportMetric(float64(total)/float64(b.N)/n, "alloc-B/stream")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(held)/(1<<20), "live-MB-held")
	b.ReportMetric(float64(live)/(1<<20), "live-MB-at-push")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}
