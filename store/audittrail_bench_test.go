package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// benchTrail appends engine-shaped batches of 256 sealed records to a
// SQLite trail of 100k records already, as a trail that has run a while.
// shape sets what varies from record to record (its trace id, its agent).
func benchTrail(b *testing.B, shape func(n int, r *audit.Record)) {
	s, err := store.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	benchAppend(b, s, 100_000, shape)
}

// benchAppend appends prefill records to s untimed, then one batch of 256
// sealed records an iteration, timed; records/s is the figure that
// matters. shape, if set, changes each record before it is sealed.
func benchAppend(b *testing.B, s audit.Store, prefill int, shape func(n int, r *audit.Record)) {
	const batch = 256
	prev := audit.GenesisHash
	at := time.Now()
	n := 0
	next := func() []audit.Record {
		rs := make([]audit.Record, batch)
		for i := range rs {
			rs[i] = audit.Record{ID: fmt.Sprintf("aud_%024x", n), Timestamp: at.Add(time.Duration(n) * time.Microsecond),
				TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", AgentID: "agent_a", AgentName: "researcher", Action: "read:docs",
				Resource: "docs/a", Method: "GET", Path: "/docs/a", Host: "docs.internal", Decision: "allow", Status: 200,
				Policy: "readers", Rule: "reads", Chain: []string{"agent_a"}, Source: "ext_authz-grpc", SourceAddress: "10.0.0.9", Mode: "enforce"}
			if shape != nil {
				shape(n, &rs[i])
			}
			if err := rs[i].Seal(prev); err != nil {
				b.Fatal(err)
			}
			prev = rs[i].Hash
			n++
		}
		return rs
	}
	for range prefill / batch {
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
