package identity

import (
	"context"
	"testing"
)

func BenchmarkVerifyUncached(b *testing.B) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		b.Run(alg, func(b *testing.B) {
			e := newTestEnv(b, alg)
			tok, _ := e.issue(b)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.verifier.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	e := newTestEnv(b, AlgEdDSA)
	c := NewCachedVerifier(e.verifier, CacheConfig{})
	tok, _ := e.issue(b)
	ctx := context.Background()
	if _, err := c.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Verify(ctx, tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkIssue(b *testing.B) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		b.Run(alg, func(b *testing.B) {
			e := newTestEnv(b, alg)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := e.issuer.Issue(e.agent, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
