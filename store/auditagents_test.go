package store

import (
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// TestAuditUnknownAgent: an agent with no dictionary entry has an empty
// page, scan and last seen, without an error; a follow filtered on it
// still moves its cursor past the records it skipped, and once the agent's
// records are stored the next follow delivers them (its number is read at
// every call, not kept from the first).
func TestAuditUnknownAgent(t *testing.T) {
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t)
			ctx := t.Context()
			rs := compactRecords(t, audit.GenesisHash, 6) // agents agent_0..agent_2
			if err := s.AppendAudit(ctx, rs[:3]); err != nil {
				t.Fatal(err)
			}
			f := AuditFilter{AgentID: "agent_new"}
			page, err := s.QueryAudit(ctx, f)
			if err != nil || len(page.Records) != 0 || page.Next != "" || page.Newest != "" {
				t.Fatalf("page: %+v, %v", page, err)
			}
			if err := s.ScanAuditFiltered(ctx, f, func(r audit.Record, _ string) error {
				t.Errorf("scan delivered %s", r.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := s.AgentLastSeen(ctx, "agent_new"); ok || err != nil {
				t.Fatalf("last seen: %v, %v", ok, err)
			}
			var cur FollowCursor
			var got []string
			follow := func() {
				t.Helper()
				if err := s.FollowAudit(ctx, f, &cur, func(r audit.Record, _ *FollowCursor) error {
					got = append(got, r.ID)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			follow()
			heads, err := s.AuditChains(ctx)
			if err != nil || len(heads) != 1 {
				t.Fatalf("chains: %v, %v", heads, err)
			}
			if len(got) != 0 || cur.pos(heads[0].ID) != heads[0].Seq {
				t.Fatalf("follow before the agent: got %v, cursor at %d, want none and %d", got, cur.pos(heads[0].ID), heads[0].Seq)
			}
			later := rs[3:]
			for i := range later {
				later[i].AgentID, later[i].Chain = "agent_new", []string{"agent_new"}
				if err := later[i].Seal(rs[i+2].Hash); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AppendAudit(ctx, later); err != nil {
				t.Fatal(err)
			}
			follow()
			if len(got) != 3 || got[0] != later[0].ID {
				t.Fatalf("follow after the agent's records: got %v, want %s…", got, later[0].ID)
			}
			if seen, ok, err := s.AgentLastSeen(ctx, "agent_new"); !ok || err != nil || !seen.Equal(later[2].Timestamp.Truncate(1000)) {
				t.Fatalf("last seen: %v %v %v, want %v", seen, ok, err, later[2].Timestamp)
			}
		})
	}
}
