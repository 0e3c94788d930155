package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// TestReadStmtsBounded: pages of more distinct texts (one a limit) than
// maxReadStmts all answer in full, the texts past the bound unprepared,
// and no more than maxReadStmts statements are kept; a record read twice
// by id through its kept statement is the same both times.
func TestReadStmtsBounded(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const total = maxReadStmts + 10
	rs := make([]audit.Record, total)
	prev := audit.GenesisHash
	for i := range rs {
		rs[i] = audit.Record{ID: fmt.Sprintf("aud_%04d", i), Timestamp: time.UnixMicro(1_700_000_000_000_000 + int64(i)).UTC(),
			AgentID: fmt.Sprintf("agent_%d", i%3), Action: "read:docs", Decision: "allow", Status: 200, Source: "ext_authz-grpc"}
		if err := rs[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = rs[i].Hash
	}
	if err := s.AppendAudit(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	for limit := 1; limit <= total; limit++ {
		p, err := s.QueryAudit(t.Context(), AuditFilter{Limit: limit})
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		if len(p.Records) != limit || p.Records[0].ID != rs[total-1].ID {
			t.Fatalf("limit %d: got %d records", limit, len(p.Records))
		}
	}
	s.reads.mu.Lock()
	kept := len(s.reads.m)
	s.reads.mu.Unlock()
	if kept > maxReadStmts {
		t.Errorf("%d statements kept, want at most %d", kept, maxReadStmts)
	}
	for range 2 {
		r, ok, err := s.AuditRecord(t.Context(), rs[7].ID)
		if err != nil || !ok || r.Hash != rs[7].Hash || r.AgentID != rs[7].AgentID {
			t.Fatalf("AuditRecord: %v %v %+v", ok, err, r)
		}
	}
}
