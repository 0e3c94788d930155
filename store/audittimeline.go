package store

import (
	"context"
	"fmt"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// MaxTimelineMinutes bounds the span of AuditPerMinute: a day.
const MaxTimelineMinutes = 24 * 60

// AuditPerMinute counts the allowed and denied records of each minute of
// from ≤ timestamp < to, minutes counted from from. Only minutes that hold
// records are returned, oldest first: at most MaxTimelineMinutes rows,
// grouped by the database.
func (s *db) AuditPerMinute(ctx context.Context, from, to time.Time) ([]audit.Minute, error) {
	switch {
	case !from.Before(to):
		return nil, fmt.Errorf("audit per minute: %w: from must be before to", ErrInvalidFilter)
	case to.Sub(from) > MaxTimelineMinutes*time.Minute:
		return nil, fmt.Errorf("audit per minute: %w: at most %d minutes", ErrInvalidFilter, MaxTimelineMinutes)
	}
	f := from.UnixMicro()
	// ts ≥ from, so the integer division truncates to the minute's index
	// in both SQLite and PostgreSQL.
	rows, err := s.r.QueryContext(ctx, `SELECT (ts - $1) / 60000000 AS m,
			SUM(CASE WHEN decision = `+s.dialect.denySQL()+` THEN 0 ELSE 1 END), SUM(CASE WHEN decision = `+s.dialect.denySQL()+` THEN 1 ELSE 0 END)
		FROM audit WHERE ts >= $1 AND ts < $2 GROUP BY m ORDER BY m`, f, to.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("audit per minute: %w", err)
	}
	defer rows.Close()
	out := []audit.Minute{}
	for rows.Next() {
		var m int64
		var c audit.Minute
		if err := rows.Scan(&m, &c.Allowed, &c.Denied); err != nil {
			return nil, fmt.Errorf("audit per minute: %w", err)
		}
		c.Start = time.UnixMicro(f + m*60_000_000).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit per minute: %w", err)
	}
	return out, nil
}
