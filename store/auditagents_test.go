package store

import (
	"errors"
	"fmt"
	"slices"
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

// sealedFor is n records like compactRecords' but with IDs from first on,
// re-sealed from prev, record i by agentOf(i).
func sealedFor(t *testing.T, prev string, first, n int, agentOf func(i int) string) []audit.Record {
	t.Helper()
	rs := compactRecords(t, prev, n)
	for i := range rs {
		rs[i].ID = fmt.Sprintf("aud_01a2287480857309d0e6%04x", first+i)
		rs[i].AgentID, rs[i].Chain = agentOf(i), []string{agentOf(i)}
		if err := rs[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = rs[i].Hash
	}
	return rs
}

// agentRecords are the IDs of agent's records, read back by a filter on it.
func agentRecords(t *testing.T, s *db, agent string) []string {
	t.Helper()
	var ids []string
	if err := s.ScanAuditFiltered(t.Context(), AuditFilter{AgentID: agent}, func(r audit.Record, _ string) error {
		if r.AgentID != agent {
			t.Errorf("a filter on %s read %s of %s", agent, r.ID, r.AgentID)
		}
		ids = append(ids, r.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// TestAuditAgentNumbersAcrossChunks: a batch of more distinct agents than
// one read of the dictionary takes (64) gets each its own number, through
// reads padded to their chunk sizes; so does a later batch of known and
// new agents. Each agent's records read back as its own and the chain
// verifies.
func TestAuditAgentNumbersAcrossChunks(t *testing.T) {
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t)
			ctx := t.Context()
			first := sealedFor(t, audit.GenesisHash, 0, 70, func(i int) string { return fmt.Sprintf("agent_%02d", i) })
			second := sealedFor(t, first[69].Hash, 70, 30, func(i int) string { return fmt.Sprintf("agent_%02d", 60+i) })
			want := map[string][]string{}
			for _, batch := range [][]audit.Record{first, second} {
				if err := s.AppendAudit(ctx, batch); err != nil {
					t.Fatal(err)
				}
				for _, r := range batch {
					want[r.AgentID] = append(want[r.AgentID], r.ID)
				}
			}
			for _, agent := range []string{"agent_00", "agent_33", "agent_59", "agent_63", "agent_64", "agent_69", "agent_70", "agent_89"} {
				if got := agentRecords(t, s, agent); !slices.Equal(got, want[agent]) {
					t.Errorf("%s's records: %v, want %v", agent, got, want[agent])
				}
			}
			if n, err := audit.VerifyChains(ctx, s); n != 100 || err != nil {
				t.Fatalf("verify: %d records, %v", n, err)
			}
		})
	}
}

// TestAuditAgentNumberOfARolledBackBatch: an agent a refused batch added to
// the dictionary is not there once the batch rolls back (on SQLite its
// number goes to the next agent added), so a later batch of that agent
// gets a number of its own, not one remembered from the refused batch.
func TestAuditAgentNumberOfARolledBackBatch(t *testing.T) {
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t)
			ctx := t.Context()
			refused := sealedFor(t, audit.GenesisHash, 0, 2, func(int) string { return "agent_gone" })
			refused[1].Hash = "" // not a sealed record: the batch is refused after its agent was added
			if err := s.AppendAudit(ctx, refused); !errors.Is(err, audit.ErrRecordRefused) {
				t.Fatalf("append of an unsealed record: %v, want ErrRecordRefused", err)
			}
			next := sealedFor(t, audit.GenesisHash, 2, 1, func(int) string { return "agent_next" })
			gone := sealedFor(t, next[0].Hash, 3, 1, func(int) string { return "agent_gone" })
			for _, batch := range [][]audit.Record{next, gone} {
				if err := s.AppendAudit(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			if got := agentRecords(t, s, "agent_next"); !slices.Equal(got, []string{next[0].ID}) {
				t.Errorf("agent_next's records: %v", got)
			}
			if got := agentRecords(t, s, "agent_gone"); !slices.Equal(got, []string{gone[0].ID}) {
				t.Errorf("agent_gone's records: %v", got)
			}
			if n, err := audit.VerifyChains(ctx, s); n != 2 || err != nil {
				t.Fatalf("verify: %d records, %v", n, err)
			}
		})
	}
}

// TestAuditAgentIDsTheStoreCannotKeep: a record whose agent id the store
// cannot keep as written is refused as the record's fault
// (ErrRecordRefused: the writer sets it apart) or stored so that it reads
// back under its agent and verifies; never stored as a record verification
// then reports edited (SQLite kept an agent id that is not UTF-8), nor
// failed as the store's fault (PostgreSQL refused it in the dictionary
// with an error the writer retries forever). A good record is stored
// after it.
func TestAuditAgentIDsTheStoreCannotKeep(t *testing.T) {
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range []struct {
				name, agent string
				refused     bool // on every engine; else as the engine can keep it
			}{
				{name: "not UTF-8", agent: "agent\xffb", refused: true},
				{name: "a NUL", agent: "agent\x00b"},
				{name: "a lone surrogate's bytes", agent: "agent\xed\xa0\x80b", refused: true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					s, _ := b.open(t)
					ctx := t.Context()
					bad := sealedFor(t, audit.GenesisHash, 0, 1, func(int) string { return tc.agent })
					prev, stored := audit.GenesisHash, 0
					switch err := s.AppendAudit(ctx, bad); {
					case errors.Is(err, audit.ErrRecordRefused):
					case err != nil:
						t.Fatalf("append: %v, want it stored or ErrRecordRefused", err)
					case tc.refused:
						t.Fatalf("append stored it, want ErrRecordRefused")
					default:
						prev, stored = bad[0].Hash, 1
						if got := agentRecords(t, s, tc.agent); !slices.Equal(got, []string{bad[0].ID}) {
							t.Errorf("%q's records: %v", tc.agent, got)
						}
					}
					good := sealedFor(t, prev, 1, 1, func(int) string { return "agent_good" })
					if err := s.AppendAudit(ctx, good); err != nil {
						t.Fatal(err)
					}
					if n, err := audit.VerifyChains(ctx, s); n != int64(stored+1) || err != nil {
						t.Fatalf("verify: %d records, %v; want %d", n, err, stored+1)
					}
				})
			}
		})
	}
}

// TestAuditBatchOfMoreNewAgentsThanOneStatementTakes: a batch naming more
// new agents than one statement takes parameters (SQLite's 32766) is
// stored, each record under its own agent; the dictionary's INSERT failed
// it, with an error the writer retries forever.
func TestAuditBatchOfMoreNewAgentsThanOneStatementTakes(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 33,000 records")
	}
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t)
			ctx := t.Context()
			const n = 33_000
			rs := sealedFor(t, audit.GenesisHash, 0, n, func(i int) string { return fmt.Sprintf("agent_%05d", i) })
			if err := s.AppendAudit(ctx, rs); err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{0, 32_765, 32_766, n - 1} {
				if got := agentRecords(t, s, rs[i].AgentID); !slices.Equal(got, []string{rs[i].ID}) {
					t.Errorf("%s's records: %v, want %s", rs[i].AgentID, got, rs[i].ID)
				}
			}
			if v, err := audit.VerifyChains(ctx, s); v != n || err != nil {
				t.Fatalf("verify: %d records, %v", v, err)
			}
		})
	}
}

// TestAnswerPagesOfManyAgents: a page naming more agents than one read of
// the dictionary takes (64), or just one more than a chunk size, reads
// each record under its own agent with nothing kept in memory yet: the
// answer's number-to-id reads go in padded chunks on both engines (the
// test past maxAgentNames covers SQLite alone, and not with -short).
func TestAnswerPagesOfManyAgents(t *testing.T) {
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, n := range []int{17, 64, 65, 150} {
				s, _ := b.open(t)
				ctx := t.Context()
				rs := sealedFor(t, audit.GenesisHash, 0, n, func(i int) string { return fmt.Sprintf("agent_%03d", (i*7)%n) })
				if err := s.AppendAudit(ctx, rs); err != nil {
					t.Fatal(err)
				}
				// A page of the whole trail, and one through a filter
				// (the answer's other select).
				for _, f := range []AuditFilter{{Limit: MaxAuditLimit}, {From: rs[0].Timestamp, Limit: MaxAuditLimit}} {
					s.agentNames.mu.Lock()
					s.agentNames.m, s.agentNames.nums = nil, nil // as a reader that has learnt none
					s.agentNames.mu.Unlock()
					page, err := s.QueryAudit(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					if len(page.Records) != n {
						t.Fatalf("%d agents, filter %+v: %d records", n, f, len(page.Records))
					}
					for i, r := range page.Records {
						if w := rs[n-1-i]; r.ID != w.ID || r.AgentID != w.AgentID || r.Hash != w.Hash || r.Unreadable != "" {
							t.Errorf("%d agents, filter %+v: record %d is %s of %q (%s), sealed %s of %q", n, f, i, r.ID, r.AgentID, r.Unreadable, w.ID, w.AgentID)
						}
					}
				}
			}
		})
	}
}
