package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// BenchmarkAuditReads times the reads the console and CLI make most on a
// trail of 20,000 records written in batches of 500 (so most rows store no
// prev_hash): a record by id, and the newest page.
func BenchmarkAuditReads(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db")
	s, err := store.OpenSQLite(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	const total, batch = 20_000, 500
	prev := audit.GenesisHash
	at := time.Now()
	for n := 0; n < total; n += batch {
		rs := make([]audit.Record, batch)
		for i := range rs {
			rs[i] = audit.Record{ID: fmt.Sprintf("aud_%09d", n+i), Timestamp: at, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
				AgentID: fmt.Sprintf("agent_%d", (n+i)%60), Action: "read:docs", Resource: "docs/a", Method: "GET",
				Decision: "allow", Status: 200, Policy: "readers", Rule: "reads", Source: "ext_authz-grpc", Mode: "enforce"}
			if err := rs[i].Seal(prev); err != nil {
				b.Fatal(err)
			}
			prev = rs[i].Hash
		}
		if err := s.AppendAudit(b.Context(), rs); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("by-id", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := s.AuditRecord(b.Context(), "aud_000010001"); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	// A page read by a handle that has read no dictionary entry yet (a
	// server just started): the agents' ids are read from the database.
	b.Run("newest-page-cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			cold, err := store.OpenSQLite(b.Context(), path)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if p, err := cold.QueryAudit(b.Context(), store.AuditFilter{}); err != nil || len(p.Records) != store.DefaultAuditLimit {
				b.Fatal(len(p.Records), err)
			}
			b.StopTimer()
			_ = cold.Close()
			b.StartTimer()
		}
	})
	b.Run("newest-page", func(b *testing.B) {
		for b.Loop() {
			if p, err := s.QueryAudit(b.Context(), store.AuditFilter{}); err != nil || len(p.Records) != store.DefaultAuditLimit {
				b.Fatal(len(p.Records), err)
			}
		}
	})
}
