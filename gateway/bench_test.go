package gateway_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// BenchmarkGatewayAllowed measures one allowed request: a real engine
// (SQLite, EdDSA token, cached verification) and a real upstream over
// 127.0.0.1, with keep-alive connections.
//
//   - gateway: client → gateway → upstream, all in this process;
//   - direct: client → upstream, the floor the gateway adds to;
//   - handler: Gateway.ServeHTTP on a recorder, so no client or server
//     on the caller's side: the gateway's own work plus the upstream hop;
//   - services, services-handler: the same through PROXY_SERVICES, the
//     upstream a catalogue service with a route (the lookup, the route
//     match, the endpoint choice), against gateway and handler.
func BenchmarkGatewayAllowed(b *testing.B) {
	f := enginetest.New(b, testPolicies, enginetest.Options{})
	_, tok := f.Agent(b, "reader", trust.Verified, []string{"reader"})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"users":[]}`)
	}))
	b.Cleanup(up.Close)
	gw, err := gateway.New(gateway.Config{
		Checker: f.Engine, Target: mustURL(b, up.URL),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	b.Cleanup(srv.Close)
	client := newClient(b)
	sgw, err := gateway.New(gateway.Config{
		Checker: f.Engine, Logger: slog.New(slog.DiscardHandler),
		Services: newServices(b, catalog.Service{Name: "api", Hosts: []string{"api.mesh.test"}, Port: 8080,
			Endpoints: []string{strings.TrimPrefix(up.URL, "http://")},
			Routes:    []catalog.Route{{Method: "POST", Path: "/users/*", Action: "write:users"}, {Path: "/users", Action: "read:users"}}}),
	})
	if err != nil {
		b.Fatal(err)
	}
	ssrv := httptest.NewServer(sgw)
	b.Cleanup(ssrv.Close)

	get := func(b *testing.B, url string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Traceparent", traceparent)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	b.Run("gateway", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			get(b, srv.URL+"/proxy/api/users?page=2")
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			get(b, up.URL+"/api/users?page=2")
		}
	})
	b.Run("handler", func(b *testing.B) {
		// One inbound request, reused: the gateway does not modify it.
		req := httptest.NewRequest("GET", "/proxy/api/users?page=2", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Traceparent", traceparent)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			gw.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
	b.Run("services", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			get(b, ssrv.URL+"/proxy/api/users?page=2")
		}
	})
	b.Run("services-handler", func(b *testing.B) {
		req := httptest.NewRequest("GET", "/proxy/api/users?page=2", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Traceparent", traceparent)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			sgw.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
	b.Run("gateway-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				get(b, srv.URL+"/proxy/api/users?page=2")
			}
		})
	})
}
