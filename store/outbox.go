package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// MaxOutbox bounds the undelivered alerts the outbox keeps: a receiver down
// for a long time must not fill the disk. Beyond it EnqueueAlerts refuses
// (ErrOutboxFull) and the caller counts what it could not keep.
const MaxOutbox = 100_000

// ErrOutboxFull: the outbox holds MaxOutbox undelivered alerts.
var ErrOutboxFull = errors.New("the alert outbox is full")

// OutboxAlert is one alert waiting for one provider.
type OutboxAlert struct {
	ID        int64 // assigned by the store
	Provider  string
	AlertID   string
	Payload   string // the alert as JSON
	Attempts  int
	NextAt    time.Time // when it may be tried (again)
	LastError string
	CreatedAt time.Time
}

// EnqueueAlerts stores alerts, all or none, due at once (or at their
// NextAt, if set).
func (s *db) EnqueueAlerts(ctx context.Context, alerts []OutboxAlert) error {
	if len(alerts) == 0 {
		return nil
	}
	now := stamp(s.now)
	// A plain transaction, not the store's serialising write lock: two
	// replicas enqueueing at once may pass MaxOutbox by a batch, no more.
	err := s.tx(ctx, "", func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM alert_outbox`).Scan(&n); err != nil {
			return err
		}
		if n+len(alerts) > MaxOutbox {
			return fmt.Errorf("%w: %d waiting, %d more", ErrOutboxFull, n, len(alerts))
		}
		for _, a := range alerts {
			next := a.NextAt
			if next.IsZero() {
				next = now
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO alert_outbox (provider, alert_id, payload, next_at, created_at) VALUES ($1, $2, $3, $4, $5)`,
				a.Provider, a.AlertID, a.Payload, toMicros(next), toMicros(now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("enqueue alerts: %w", err)
	}
	return nil
}

// ClaimAlerts returns up to limit alerts for provider that are due at now,
// oldest first, and pushes them lease into the future: nobody else (another
// replica, the next loop) takes them while they are being delivered, and if
// the deliverer dies they come due again when the lease ends. Delivery is
// therefore at least once.
func (s *db) ClaimAlerts(ctx context.Context, provider string, now time.Time, lease time.Duration, limit int) ([]OutboxAlert, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []OutboxAlert
	// SKIP LOCKED keeps replicas apart; the write lock is not needed.
	err := s.tx(ctx, "", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE alert_outbox SET next_at = $1 WHERE id IN (
			SELECT id FROM alert_outbox WHERE provider = $2 AND next_at <= $3 ORDER BY id LIMIT $4`+s.dialect.skipLocked+`)
			RETURNING id, provider, alert_id, payload, attempts, next_at, last_error, created_at`,
			toMicros(now.Add(lease)), provider, toMicros(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a OutboxAlert
			var next, created int64
			if err := rows.Scan(&a.ID, &a.Provider, &a.AlertID, &a.Payload, &a.Attempts, &next, &a.LastError, &created); err != nil {
				return err
			}
			a.NextAt, a.CreatedAt = fromMicros(next), fromMicros(created)
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim alerts for %s: %w", provider, err)
	}
	slices.SortFunc(out, func(a, b OutboxAlert) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// AlertDelivered removes a delivered alert.
func (s *db) AlertDelivered(ctx context.Context, id int64) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM alert_outbox WHERE id = $1`, id); err != nil {
		return fmt.Errorf("alert %d delivered: %w", id, err)
	}
	return nil
}

// AlertFailed records a failed attempt and when to try again.
func (s *db) AlertFailed(ctx context.Context, id int64, next time.Time, reason string) error {
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE alert_outbox SET attempts = attempts + 1, next_at = $1, last_error = $2 WHERE id = $3`,
		toMicros(next), reason, id); err != nil {
		return fmt.Errorf("alert %d failed: %w", id, err)
	}
	return nil
}

// CountOutbox returns how many alerts wait, per provider.
func (s *db) CountOutbox(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT provider, COUNT(*) FROM alert_outbox GROUP BY provider`)
	if err != nil {
		return nil, fmt.Errorf("count outbox: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("count outbox: %w", err)
		}
		out[p] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count outbox: %w", err)
	}
	return out, nil
}
