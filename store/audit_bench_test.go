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

// BenchmarkAppendAudit appends sealed batches of 256 records, as the audit
// writer does under load; records/s is the figure that matters.
func BenchmarkAppendAudit(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(b *testing.B) audit.Store
	}{
		{"sqlite", func(b *testing.B) audit.Store {
			s, err := store.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
		{"postgres", func(b *testing.B) audit.Store {
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
			const batch = 256
			prev := audit.GenesisHash
			at := time.Now()
			n := 0
			next := func() []audit.Record {
				rs := make([]audit.Record, batch)
				for i := range rs {
					rs[i] = audit.Record{ID: fmt.Sprintf("aud_%09d", n), Timestamp: at, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
						AgentID: "agent_a", AgentName: "researcher", Action: "read:docs", Resource: "docs/a", Method: "GET",
						Path: "/docs/a", Host: "docs.internal", Decision: "allow", Status: 200, Policy: "readers", Rule: "reads",
						Chain: []string{"agent_a"}, Source: "ext_authz-grpc", SourceAddress: "10.0.0.9", Mode: "enforce"}
					if err := rs[i].Seal(prev); err != nil {
						b.Fatal(err)
					}
					prev = rs[i].Hash
					n++
				}
				return rs
			}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				rs := next()
				b.StartTimer()
				if err := s.AppendAudit(b.Context(), rs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
