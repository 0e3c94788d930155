package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/meshguard/meshguard/audit"
)

// The audit rows name their agent by a number from audit_agents (migrations
// sqlite/0014, postgres/0017): a trail repeats a few agents' ids in every
// row and in the (agent, ts) index. Entries are added, never changed or
// deleted, so a number means one agent for the life of the trail.

// auditAgentSQL reads a row's agent id; ” when its number names no
// dictionary entry (an edited row), which its hash then reports.
const auditAgentSQL = `COALESCE((SELECT g.agent_id FROM audit_agents g WHERE g.n = audit.agent), '')`

// noAgent is a number no dictionary entry has (they start at 1): the
// condition on an agent that has none, where a query must still run.
const noAgent = 0

// auditAgentNumber is agent id's dictionary number, or false when it has
// none (then it has no records). Queries take the number as a parameter,
// not a subquery: a planner choosing an index cannot see a subquery's value
// (PostgreSQL read the agent's whole index for agent+deny+hour).
func (s *db) auditAgentNumber(ctx context.Context, id string) (int64, bool, error) {
	// Entries never change (agentNames), so a number read once is kept; an
	// agent with none is asked again, as it may have records by now. On
	// PostgreSQL the read cost a filter on an agent a round trip.
	s.agentNames.mu.RLock()
	n, ok := s.agentNames.nums[id]
	s.agentNames.mu.RUnlock()
	if ok {
		return n, true, nil
	}
	err := s.r.QueryRowContext(ctx, `SELECT n FROM audit_agents WHERE agent_id = $1`, id).Scan(&n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("audit agent %s: %w", id, err)
	}
	s.agentNames.mu.Lock()
	s.agentNames.learn(n, id)
	s.agentNames.mu.Unlock()
	return n, true, nil
}

// agentsPerInsert bounds the new agents one INSERT adds to the dictionary.
const agentsPerInsert = 1024

// auditAgentNumbers returns the dictionary numbers of rs's agents, adding
// the ones it has not seen. Numbers are read in the transaction that uses
// them, not cached: an entry added by a transaction that then rolled back
// does not exist (and on SQLite its number goes to the next agent added).
// They are read in chunks of linkChunks' sizes, so the statements' texts
// are few and kept prepared (writerReads).
func (s *db) auditAgentNumbers(ctx context.Context, tx *sql.Tx, rs []audit.Record) (map[string]int64, error) {
	var ids []any
	seen := make(map[string]int64, 8)
	for i := range rs {
		if _, ok := seen[rs[i].AgentID]; !ok {
			// The store writes UTF-8 only (storedForm): SQLite would
			// keep the bytes, and the record would verify as edited.
			if !utf8.ValidString(rs[i].AgentID) {
				return nil, fmt.Errorf("%w: record %d: its agent id is not UTF-8", audit.ErrRecordRefused, i)
			}
			seen[rs[i].AgentID] = 0
			ids = append(ids, rs[i].AgentID)
		}
	}
	if err := s.readAgentNumbers(ctx, tx, ids, seen); err != nil {
		return nil, agentsErr(err)
	}
	var missing []any
	for _, id := range ids {
		if seen[id.(string)] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return seen, nil
	}
	// Another writer may add the same agent meanwhile (PostgreSQL
	// replicas): ON CONFLICT waits for it, then the read below finds it.
	// Each entry added holds its key until the transaction ends, so they
	// are added in one order for every writer: in batch order, replicas
	// adding a, b and b, a deadlock (TestReplicasAddingTheSameAgentsInOtherOrders).
	slices.SortFunc(missing, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
	for rest := missing; len(rest) > 0; {
		// A statement takes so many parameters (SQLite 32766), and a
		// batch may name more new agents.
		add := rest[:min(len(rest), agentsPerInsert)]
		rest = rest[len(add):]
		var vals strings.Builder
		for i := range add {
			if i > 0 {
				vals.WriteByte(',')
			}
			vals.WriteString("($" + strconv.Itoa(i+1) + ")")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_agents (agent_id) VALUES `+vals.String()+` ON CONFLICT DO NOTHING`, add...); err != nil {
			return nil, agentsErr(err)
		}
	}
	if err := s.readAgentNumbers(ctx, tx, missing, seen); err != nil {
		return nil, agentsErr(err)
	}
	for _, id := range missing {
		if seen[id.(string)] == 0 {
			return nil, fmt.Errorf("audit agents: %q has no number after adding it", id)
		}
	}
	return seen, nil
}

// agentsErr wraps an error of the dictionary's reads and INSERT. One the
// database gives for the data (PostgreSQL's for a NUL in an agent id) is
// the records' fault, as insertAudit's: the writer then sets the record
// apart instead of retrying its batch forever.
func agentsErr(err error) error {
	if isDataError(err) {
		err = fmt.Errorf("%w: %w", audit.ErrRecordRefused, err)
	}
	return fmt.Errorf("audit agents: %w", err)
}

// readAgentNumbers sets the number of each of ids (agent ids) that has
// one in seen.
func (s *db) readAgentNumbers(ctx context.Context, tx *sql.Tx, ids []any, seen map[string]int64) error {
	return readAgentEntries(ids, func(k int, args []any) (*sql.Rows, error) {
		if st := s.writerReads.agentsIn[k]; st != nil {
			return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
		}
		return tx.QueryContext(ctx, agentNumbersSQL(linkChunks[k]), args...)
	}, func(n int64, id string) { seen[id] = n })
}

// readAgentEntries reads the dictionary entries keys name (numbers or
// agent ids), in chunks of linkChunks' sizes padded with the last key, so
// that the statements' texts are few (and kept prepared): query runs
// chunk size linkChunks[k] with args, and each entry read goes to found.
func readAgentEntries(keys []any, query func(k int, args []any) (*sql.Rows, error), found func(n int64, id string)) error {
	for len(keys) > 0 {
		k := chunkIndex(len(keys))
		n := linkChunks[k]
		args := make([]any, n)
		for i := range n {
			args[i] = keys[min(i, len(keys)-1)]
		}
		keys = keys[min(n, len(keys)):]
		if err := func() error {
			rows, err := query(k, args)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var num int64
				var id string
				if err := rows.Scan(&num, &id); err != nil {
					return err
				}
				found(num, id)
			}
			return rows.Err()
		}(); err != nil {
			return err
		}
	}
	return nil
}

// agentNumbersSQL reads the numbers of n agent ids.
func agentNumbersSQL(n int) string {
	return `SELECT n, agent_id FROM audit_agents WHERE agent_id IN (` + placeholders(1, n) + `)`
}

// placeholders is "$from, …" for n arguments.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}
