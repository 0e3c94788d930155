package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/meshguard/meshguard/identity"
)

const (
	agentColumns = `id, name, trust_tier, tags, hosts, spiffe_ids, metadata, status, created_at, updated_at`

	getAgentSQL       = `SELECT ` + agentColumns + ` FROM agents WHERE id = $1`
	getAgentByNameSQL = `SELECT ` + agentColumns + ` FROM agents WHERE name = $1`
	agentByHostSQL    = `SELECT a.id, a.name, a.trust_tier, a.tags, a.hosts, a.spiffe_ids, a.metadata, a.status, a.created_at, a.updated_at
		FROM agent_hosts h JOIN agents a ON a.id = h.agent_id WHERE h.host = $1`
	agentBySPIFFEIDSQL = `SELECT a.id, a.name, a.trust_tier, a.tags, a.hosts, a.spiffe_ids, a.metadata, a.status, a.created_at, a.updated_at
		FROM agent_spiffe_ids s JOIN agents a ON a.id = s.agent_id WHERE s.spiffe_id = $1`
	insertAgentSQL = `INSERT INTO agents (` + agentColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	updateAgentSQL = `UPDATE agents SET name = $2, trust_tier = $3, tags = $4, hosts = $5, spiffe_ids = $6, metadata = $7,
		status = $8, updated_at = $9 WHERE id = $1`
	// sqliteTagClause is ListAgents' tag test; $tag is replaced by the
	// argument's placeholder.
	sqliteTagClause = `EXISTS (SELECT 1 FROM json_each(agents.tags) WHERE json_each.value = $tag)`
)

type rowScanner interface{ Scan(dest ...any) error }

func scanAgent(sc rowScanner) (identity.Agent, error) {
	var r agentRow
	if err := sc.Scan(&r.id, &r.name, &r.tier, &r.tags, &r.hosts, &r.spiffeIDs, &r.metadata, &r.status, &r.createdAt, &r.updatedAt); err != nil {
		return identity.Agent{}, err
	}
	return r.decode()
}

// CreateAgent stores a new agent and returns it as stored. An empty ID is
// assigned one (identity.NewAgentID); createdAt and updatedAt are set to now
// whatever a holds. Invalid fields give identity.ErrInvalidAgent; an id,
// name or host another agent has gives identity.ErrConflict. Either way
// nothing is written.
func (s *db) CreateAgent(ctx context.Context, a identity.Agent) (identity.Agent, error) {
	if err := checkAgent(a, true); err != nil {
		return identity.Agent{}, fmt.Errorf("create agent: %w", err)
	}
	if a.ID == "" {
		a.ID = identity.NewAgentID()
	}
	now := stamp(s.now)
	a.CreatedAt, a.UpdatedAt = now, now
	row, err := encodeAgent(a)
	if err != nil {
		return identity.Agent{}, fmt.Errorf("create agent %q: %w", a.Name, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var taken string
		switch err := tx.QueryRowContext(ctx, `SELECT id FROM agents WHERE id = $1`, a.ID).Scan(&taken); {
		case err == nil:
			return fmt.Errorf("%w: id %q is taken", identity.ErrConflict, a.ID)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if err := checkFree(ctx, tx, a); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insertAgentSQL, row.id, row.name, row.tier, row.tags, row.hosts,
			row.spiffeIDs, row.metadata, row.status, row.createdAt, row.updatedAt); err != nil {
			return err
		}
		return insertIndexes(ctx, tx, a)
	})
	if err != nil {
		return identity.Agent{}, fmt.Errorf("create agent %q: %w", a.Name, conflictOr(err))
	}
	return stored(a), nil
}

// GetAgent returns the agent with id, or identity.ErrNotFound.
func (s *db) GetAgent(ctx context.Context, id string) (identity.Agent, error) {
	a, err := scanAgent(s.getAgent.QueryRowContext(ctx, id))
	if err != nil {
		return identity.Agent{}, fmt.Errorf("get agent %q: %w", id, notFoundOr(err))
	}
	return a, nil
}

// GetAgentByName returns the agent named name (exact, case-sensitive match),
// or identity.ErrNotFound.
func (s *db) GetAgentByName(ctx context.Context, name string) (identity.Agent, error) {
	a, err := scanAgent(s.getAgentByName.QueryRowContext(ctx, name))
	if err != nil {
		return identity.Agent{}, fmt.Errorf("get agent by name %q: %w", name, notFoundOr(err))
	}
	return a, nil
}

// AgentByHost returns the agent reached under host (one of its Hosts, as
// stored: with a port if it was registered with one), or identity.ErrNotFound.
// The match ignores case, as DNS does. A revoked agent keeps its hosts and is
// returned: the caller decides what revocation means for the call.
func (s *db) AgentByHost(ctx context.Context, host string) (identity.Agent, error) {
	a, err := scanAgent(s.agentByHost.QueryRowContext(ctx, normalizeHost(host)))
	if err != nil {
		return identity.Agent{}, fmt.Errorf("agent by host %q: %w", host, notFoundOr(err))
	}
	return a, nil
}

// AgentBySPIFFEID returns the agent bound to the SPIFFE ID id (one of its
// SPIFFEIDs, byte for byte), or identity.ErrNotFound. A revoked agent keeps
// its IDs and is returned: the caller decides what revocation means.
func (s *db) AgentBySPIFFEID(ctx context.Context, id string) (identity.Agent, error) {
	a, err := scanAgent(s.agentBySPIFFEID.QueryRowContext(ctx, id))
	if err != nil {
		return identity.Agent{}, fmt.Errorf("agent by SPIFFE ID %q: %w", id, notFoundOr(err))
	}
	return a, nil
}

// ListAgents returns the agents f selects, in byte-wise name order. A bad
// filter gives ErrInvalidFilter.
func (s *db) ListAgents(ctx context.Context, f AgentFilter) ([]identity.Agent, error) {
	query, args, err := f.listQuery(agentColumns, s.dialect.tagClause)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	agents := []identity.Agent{}
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		agents = append(agents, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return agents, nil
}

// UpdateAgent replaces the agent with a.ID by a (every field but createdAt)
// and returns it as stored, with updatedAt later than before.
// identity.ErrNotFound if there is no such agent; identity.ErrInvalidAgent
// and identity.ErrConflict as for CreateAgent, with nothing changed.
func (s *db) UpdateAgent(ctx context.Context, a identity.Agent) (identity.Agent, error) {
	if err := checkAgent(a, false); err != nil {
		return identity.Agent{}, fmt.Errorf("update agent: %w", err)
	}
	row, err := encodeAgent(a)
	if err != nil {
		return identity.Agent{}, fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	now := stamp(s.now)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var created, updated int64
		err := tx.QueryRowContext(ctx, `SELECT created_at, updated_at FROM agents WHERE id = $1`, a.ID).Scan(&created, &updated)
		if err != nil {
			return notFoundOr(err)
		}
		if err := checkFree(ctx, tx, a); err != nil {
			return err
		}
		a.CreatedAt, a.UpdatedAt = fromMicros(created), bumped(now, fromMicros(updated))
		if _, err := tx.ExecContext(ctx, updateAgentSQL, row.id, row.name, row.tier, row.tags, row.hosts,
			row.spiffeIDs, row.metadata, row.status, toMicros(a.UpdatedAt)); err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM agent_hosts WHERE agent_id = $1`, `DELETE FROM agent_spiffe_ids WHERE agent_id = $1`} {
			if _, err := tx.ExecContext(ctx, q, a.ID); err != nil {
				return err
			}
		}
		return insertIndexes(ctx, tx, a)
	})
	if err != nil {
		return identity.Agent{}, fmt.Errorf("update agent %s: %w", a.ID, conflictOr(err))
	}
	return stored(a), nil
}

// RevokeAgent sets the agent's status to revoked; every token it holds is
// then rejected. Revoking a revoked agent changes nothing and succeeds.
// identity.ErrNotFound if there is no such agent.
func (s *db) RevokeAgent(ctx context.Context, id string) error {
	now := toMicros(stamp(s.now))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var status string
		if err := tx.QueryRowContext(ctx, `SELECT status FROM agents WHERE id = $1`, id).Scan(&status); err != nil {
			return notFoundOr(err)
		}
		if identity.Status(status) == identity.StatusRevoked {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE agents SET status = $2,
			updated_at = CASE WHEN $3 > updated_at THEN $3 ELSE updated_at + 1 END WHERE id = $1`,
			id, string(identity.StatusRevoked), now)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke agent %q: %w", id, err)
	}
	return nil
}

// checkFree reports identity.ErrConflict, naming the holder, if another
// agent has a's name or one of its hosts or SPIFFE IDs. It runs inside the write
// transaction, so nothing can take them before the write.
func checkFree(ctx context.Context, tx *sql.Tx, a identity.Agent) error {
	var holder string
	switch err := tx.QueryRowContext(ctx, `SELECT id FROM agents WHERE name = $1 AND id <> $2`, a.Name, a.ID).Scan(&holder); {
	case err == nil:
		return fmt.Errorf("%w: name %q is taken by agent %s", identity.ErrConflict, a.Name, holder)
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	for _, h := range a.Hosts {
		switch err := tx.QueryRowContext(ctx, `SELECT agent_id FROM agent_hosts WHERE host = $1 AND agent_id <> $2`, h, a.ID).Scan(&holder); {
		case err == nil:
			return fmt.Errorf("%w: host %q belongs to agent %s", identity.ErrConflict, h, holder)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
	}
	for _, id := range a.SPIFFEIDs {
		switch err := tx.QueryRowContext(ctx, `SELECT agent_id FROM agent_spiffe_ids WHERE spiffe_id = $1 AND agent_id <> $2`, id, a.ID).Scan(&holder); {
		case err == nil:
			return fmt.Errorf("%w: SPIFFE ID %q is bound to agent %s", identity.ErrConflict, id, holder)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
	}
	return nil
}

// insertIndexes fills agent_hosts and agent_spiffe_ids for a.
func insertIndexes(ctx context.Context, tx *sql.Tx, a identity.Agent) error {
	for _, h := range a.Hosts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO agent_hosts (host, agent_id) VALUES ($1, $2)`, h, a.ID); err != nil {
			return err
		}
	}
	for _, id := range a.SPIFFEIDs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO agent_spiffe_ids (spiffe_id, agent_id) VALUES ($1, $2)`, id, a.ID); err != nil {
			return err
		}
	}
	return nil
}

// stored returns a as a read would: empty rather than nil collections, and
// copies, so the caller's later changes to its slices do not alias ours.
func stored(a identity.Agent) identity.Agent {
	a.Tags = nonNil(slices.Clone(a.Tags))
	a.Hosts = nonNil(slices.Clone(a.Hosts))
	a.SPIFFEIDs = nonNil(slices.Clone(a.SPIFFEIDs))
	if a.Metadata = maps.Clone(a.Metadata); a.Metadata == nil {
		a.Metadata = map[string]string{}
	}
	return a
}

// notFoundOr maps sql.ErrNoRows to identity.ErrNotFound.
func notFoundOr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return identity.ErrNotFound
	}
	return err
}

// conflictOr maps a unique-constraint failure to identity.ErrConflict. The
// checks before each write should leave none; this keeps the error callers
// branch on right if one slips through anyway.
func conflictOr(err error) error {
	if isUniqueViolation(err) && !errors.Is(err, identity.ErrConflict) {
		return fmt.Errorf("%w: %w", identity.ErrConflict, err)
	}
	return err
}

// CountActiveAgents counts the agents that are not revoked (the
// meshguard_active_agents metric).
func (s *db) CountActiveAgents(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM agents WHERE status = 'active'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count agents: %w", err)
	}
	return n, nil
}
