package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/meshguard/meshguard/identity"
)

// MaxStoredServices bounds the services the store keeps (the catalogue's
// own limit).
const MaxStoredServices = 1000

// StoredService is a service put through the admin API: its name and its
// catalogue entry as JSON (validated by the caller, package catalog).
type StoredService struct {
	Name      string
	Spec      string
	UpdatedAt time.Time
}

// PutService stores a service, replacing one of the same name.
func (s *db) PutService(ctx context.Context, name, spec string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM services WHERE name = $1`, name); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM services`).Scan(&n); err != nil {
			return err
		}
		if n >= MaxStoredServices {
			return fmt.Errorf("%w: more than %d stored services", identity.ErrConflict, MaxStoredServices)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO services (name, spec, updated_at) VALUES ($1, $2, $3)`, name, spec, toMicros(stamp(s.now)))
		return err
	})
	if err != nil {
		return fmt.Errorf("put service %q: %w", name, err)
	}
	return nil
}

// ListServices returns the stored services in byte-wise name order.
// Never nil.
func (s *db) ListServices(ctx context.Context) ([]StoredService, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, spec, updated_at FROM services ORDER BY name LIMIT $1`, MaxStoredServices)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	defer rows.Close()
	out := []StoredService{}
	for rows.Next() {
		var sv StoredService
		var updated int64
		if err := rows.Scan(&sv.Name, &sv.Spec, &updated); err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		sv.UpdatedAt = fromMicros(updated)
		out = append(out, sv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return out, nil
}

// DeleteService deletes a stored service, or returns identity.ErrNotFound.
func (s *db) DeleteService(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM services WHERE name = $1`, name)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = identity.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("delete service %q: %w", name, err)
	}
	return nil
}
