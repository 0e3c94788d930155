package store

import (
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestReplicasAddingTheSameAgentsInOtherOrders: two PostgreSQL replicas
// (chains of their own, so nothing else orders their transactions) append
// at once batches naming the same new agents in other orders — a, x, b
// and b, y, a. Each INSERT of a dictionary entry holds its key until the
// transaction ends, so entries added in batch order would deadlock (one
// holds a and waits for b, the other holds b and waits for a; PostgreSQL
// aborts one, and with AUDIT_FLUSH_MS=0 its decision fails). The
// interleaving is forced: a third transaction holds x and y, each replica
// is let run until it waits on a lock, then the third rolls back. Both
// batches are stored, each record under its own agent.
func TestReplicasAddingTheSameAgentsInOtherOrders(t *testing.T) {
	ctx := t.Context()
	u := pgtest.NewDatabase(t)
	one, two := openPostgresDB(t, u, WithAuditChain("replica-1")), openPostgresDB(t, u, WithAuditChain("replica-2"))
	raw, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	holder, err := raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback() }()
	if _, err := holder.ExecContext(ctx, `INSERT INTO audit_agents (agent_id) VALUES ('agent_x'), ('agent_y')`); err != nil {
		t.Fatal(err)
	}
	// waiting is how many sessions wait on a lock to add an agent.
	waitFor := func(n int) {
		t.Helper()
		for {
			var got int
			if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO audit_agents%'`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got >= n {
				return
			}
			if err := ctx.Err(); err != nil {
				t.Fatalf("%d sessions waiting to add an agent, want %d: %v", got, n, err)
			}
			time.Sleep(5 * time.Millisecond) // a poll, not a wait for time to pass
		}
	}
	batches := []struct {
		s      *db
		agents []string
		rs     []audit.Record
	}{{s: one, agents: []string{"agent_a", "agent_x", "agent_b"}}, {s: two, agents: []string{"agent_b", "agent_y", "agent_a"}}}
	errs := make(chan error, len(batches))
	for i := range batches {
		b := &batches[i]
		b.rs = sealedFor(t, audit.GenesisHash, 16*i, len(b.agents), func(j int) string { return b.agents[j] })
		go func() { errs <- b.s.AppendAudit(ctx, b.rs) }()
		waitFor(i + 1)
	}
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	for range batches {
		if err := <-errs; err != nil {
			t.Errorf("append: %v", err)
		}
	}
	want := map[string][]string{}
	for _, b := range batches {
		for _, r := range b.rs {
			want[r.AgentID] = append(want[r.AgentID], r.ID)
		}
	}
	for agent, ids := range want {
		slices.Sort(ids)
		if got := agentRecords(t, one, agent); !slices.Equal(got, ids) {
			t.Errorf("%s's records: %v, want %v", agent, got, ids)
		}
	}
	if n, err := audit.VerifyChains(ctx, one); n != 6 || err != nil {
		t.Fatalf("verify: %d records, %v", n, err)
	}
}
