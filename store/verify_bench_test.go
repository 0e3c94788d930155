package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// BenchmarkVerify walks a stored trail of 50,000 records, as `meshguard
// audit verify` does: records/s is the figure (a full verification of N
// records takes N ÷ it).
func BenchmarkVerify(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(b *testing.B) interface {
			audit.Store
			audit.Chains
		}
	}{
		{"sqlite", func(b *testing.B) interface {
			audit.Store
			audit.Chains
		} {
			s, err := store.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
		{"postgres", func(b *testing.B) interface {
			audit.Store
			audit.Chains
		} {
			s, err := store.OpenPostgres(b.Context(), pgtest.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
	} {
		b.Run(backend.name, func(b *testing.B) {
			s := backend.open(b)
			const total, batch = 50_000, 1000
			prev := audit.GenesisHash
			at := time.Now()
			for n := 0; n < total; n += batch {
				rs := make([]audit.Record, batch)
				for i := range rs {
					rs[i] = audit.Record{ID: fmt.Sprintf("aud_%09d", n+i), Timestamp: at, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
						AgentID: "agent_a", AgentName: "researcher", Action: "read:docs", Resource: "docs/a", Method: "GET",
						Path: "/docs/a", Host: "docs.internal", Decision: "allow", Status: 200, Policy: "readers", Rule: "reads",
						Chain: []string{"agent_a"}, Source: "ext_authz-grpc", SourceAddress: "10.0.0.9", Mode: "enforce"}
					if err := rs[i].Seal(prev); err != nil {
						b.Fatal(err)
					}
					prev = rs[i].Hash
				}
				if err := s.AppendAudit(b.Context(), rs); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if n, err := audit.VerifyChains(b.Context(), s); err != nil || n != total {
					b.Fatalf("VerifyChains = %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
