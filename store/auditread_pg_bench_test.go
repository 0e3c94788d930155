package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// BenchmarkAuditPointReads times PostgreSQL's point reads (a record by
// id, by trace id, an agent's denials in an hour) on a trail of 20,000
// engine-shaped records written in batches of 500, so most rows store no
// prev_hash and each answer looks its link up. It needs
// MESHGUARD_TEST_DATABASE_URL; make bench-audit-storage times the same
// reads on 100k records.
func BenchmarkAuditPointReads(b *testing.B) {
	s, err := store.OpenPostgres(b.Context(), pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	const total, batch = 20_000, 500
	prev := audit.GenesisHash
	at := time.Now().Add(-time.Duration(total) * time.Second)
	var mid audit.Record
	for n := 0; n < total; n += batch {
		rs := make([]audit.Record, batch)
		for i := range rs {
			k := n + i
			decision := "allow"
			if k%5 == 0 {
				decision = "deny"
			}
			rs[i] = audit.Record{ID: fmt.Sprintf("aud_%024x", k), Timestamp: at.Add(time.Duration(k) * time.Second),
				TraceID: fmt.Sprintf("%016x%016x", k*7919, k), AgentID: fmt.Sprintf("agent_%d", k%60), Action: "read:docs",
				Resource: "docs/a", Method: "GET", Decision: decision, Status: 200, Policy: "readers", Rule: "reads",
				Source: "ext_authz-grpc", Mode: "enforce"}
			if err := rs[i].Seal(prev); err != nil {
				b.Fatal(err)
			}
			prev = rs[i].Hash
			if k == total/2 {
				mid = rs[i]
			}
		}
		if err := s.AppendAudit(b.Context(), rs); err != nil {
			b.Fatal(err)
		}
	}
	one := func(b *testing.B, f store.AuditFilter) {
		for b.Loop() {
			if p, err := s.QueryAudit(b.Context(), f); err != nil || len(p.Records) != 1 || p.Records[0].ID != mid.ID {
				b.Fatal(len(p.Records), err)
			}
		}
	}
	b.Run("by-id", func(b *testing.B) {
		for b.Loop() {
			if r, ok, err := s.AuditRecord(b.Context(), mid.ID); err != nil || !ok || r.Hash != mid.Hash || r.PrevHash != mid.PrevHash {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("by-trace-id", func(b *testing.B) { one(b, store.AuditFilter{TraceID: mid.TraceID}) })
	b.Run("agent-deny-hour", func(b *testing.B) {
		// mid is a denial, its agent's only one in the half minute to it.
		one(b, store.AuditFilter{AgentID: mid.AgentID, Decision: "deny", From: mid.Timestamp.Add(-30 * time.Second), To: mid.Timestamp.Add(time.Microsecond)})
	})
}
