package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AgentLastSeen is the time of agent id's newest audit record, and false
// when it has none. It is one read of the index on (agent, ts), however
// long the trail: the console's agents page asks it once per row.
func (s *db) AgentLastSeen(ctx context.Context, id string) (time.Time, bool, error) {
	n, ok, err := s.auditAgentNumber(ctx, id)
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	var ts sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(ts) FROM audit WHERE agent = $1`, n).Scan(&ts); err != nil {
		return time.Time{}, false, fmt.Errorf("last seen of agent %s: %w", id, err)
	}
	if !ts.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMicro(ts.Int64).UTC(), true, nil
}
