package store_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// BenchmarkAppendAuditTraces is BenchmarkAppendAudit's SQLite case with a
// fresh random trace id a record, as the engine makes one for a request
// that carries none (BenchmarkAppendAudit's records share one, as under
// make bench-load): the trace index then takes each record at a random
// place, a page of its own, on a trail of 100k records already.
func BenchmarkAppendAuditTraces(b *testing.B) {
	s, err := store.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	const batch = 256
	prev := audit.GenesisHash
	at := time.Now()
	n := 0
	next := func() []audit.Record {
		rs := make([]audit.Record, batch)
		for i := range rs {
			var trace [16]byte
			_, _ = rand.Read(trace[:])
			rs[i] = audit.Record{ID: fmt.Sprintf("aud_%024x", n), Timestamp: at.Add(time.Duration(n) * time.Microsecond),
				TraceID: hex.EncodeToString(trace[:]), AgentID: "agent_a", AgentName: "researcher", Action: "read:docs",
				Resource: "docs/a", Method: "GET", Path: "/docs/a", Host: "docs.internal", Decision: "allow", Status: 200,
				Policy: "readers", Rule: "reads", Chain: []string{"agent_a"}, Source: "ext_authz-grpc", SourceAddress: "10.0.0.9", Mode: "enforce"}
			if err := rs[i].Seal(prev); err != nil {
				b.Fatal(err)
			}
			prev = rs[i].Hash
			n++
		}
		return rs
	}
	for range 100_000 / batch {
		if err := s.AppendAudit(b.Context(), next()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		rs := next()
		b.StartTimer()
		if err := s.AppendAudit(b.Context(), rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}
