package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/meshguard/meshguard/identity"
)

// ListKeys returns every stored signing key, oldest first (by CreatedAt, then
// kid). The current key is the one with a zero RetiredAt.
func (s *db) ListKeys(ctx context.Context) ([]identity.StoredKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kid, alg, private_der, created_at, retired_at
		FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	keys := []identity.StoredKey{}
	for rows.Next() {
		var (
			k       identity.StoredKey
			created int64
			retired sql.NullInt64
		)
		if err := rows.Scan(&k.KID, &k.Alg, &k.PrivateDER, &created, &retired); err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		k.CreatedAt = fromMicros(created)
		if retired.Valid {
			k.RetiredAt = fromMicros(retired.Int64)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// RotateKey stores next as the current key and retires every other current
// key at next.CreatedAt, in one transaction: every reader sees either the old
// key current or the new one, never none or two. A kid already stored gives
// identity.ErrConflict and changes nothing. Times are kept to the
// microsecond, so ListKeys returns CreatedAt truncated.
func (s *db) RotateKey(ctx context.Context, next identity.StoredKey) error {
	if err := checkKey(next); err != nil {
		return fmt.Errorf("rotate key: %w", err)
	}
	created := toMicros(next.CreatedAt)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM signing_keys WHERE kid = $1`, next.KID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: kid %q", identity.ErrConflict, next.KID)
		}
		// Retire first: the schema allows one current key at a time.
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL`, created); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, alg, private_der, created_at, retired_at)
			VALUES ($1, $2, $3, $4, NULL)`, next.KID, next.Alg, next.PrivateDER, created)
		return err
	})
	if err != nil {
		return fmt.Errorf("rotate key %q: %w", next.KID, conflictOr(err))
	}
	return nil
}

// DeleteKey removes the key with kid, current or not: deciding when a key
// may go is identity's business. identity.ErrNotFound if there is none.
func (s *db) DeleteKey(ctx context.Context, kid string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM signing_keys WHERE kid = $1`, kid)
	if err != nil {
		return fmt.Errorf("delete key %q: %w", kid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete key %q: %w", kid, err)
	}
	if n == 0 {
		return fmt.Errorf("delete key %q: %w", kid, identity.ErrNotFound)
	}
	return nil
}
