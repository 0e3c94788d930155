package proxyauth

import (
	"context"
	"testing"

	"google.golang.org/grpc"
)

// BenchmarkCheckThroughInterceptor: what the interceptor adds to every
// ext_authz Check (the hot path), which it lets through untouched: the
// handler called directly, and through the interceptor.
func BenchmarkCheckThroughInterceptor(b *testing.B) {
	a, err := New(Config{Secret: "bench-admin-token-0123456789"})
	if err != nil {
		b.Fatal(err)
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/envoy.service.auth.v3.Authorization/Check"}
	h := func(context.Context, any) (any, error) { return nil, nil }
	ctx := context.Background()
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			_, _ = h(ctx, nil)
		}
	})
	icpt := a.UnaryInterceptor()
	b.Run("interceptor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = icpt(ctx, nil, info, h)
		}
	})
}
