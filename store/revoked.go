package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/meshguard/meshguard/identity"
)

// revokedLimit is the most live revocations the store holds.
func (s *db) revokedLimit() int {
	if s.maxRevoked > 0 {
		return s.maxRevoked
	}
	return identity.MaxRevokedTokens
}

// deadBefore is the expires_at (microseconds) at or below which a
// revocation is dead at now: its token is refused as expired anyway.
func (s *db) deadBefore() int64 {
	return toMicros(stamp(s.now).Add(-identity.Leeway))
}

// RevokeToken stores the revocation of r.JTI, revoked now (r.RevokedAt is
// ignored), and returns it as stored, with created false when that jti
// was revoked already: revoking twice returns the first revocation, its
// exp moved to r's if that is later, unless it names another agent
// (identity.ErrConflict).
// Dead revocations (identity.RevokedToken.Live) are pruned first; past
// identity.MaxRevokedTokens live ones it is identity.ErrTooManyRevocations;
// an invalid r is identity.ErrInvalidRevocation. A refusal writes nothing.
func (s *db) RevokeToken(ctx context.Context, r identity.RevokedToken) (identity.RevokedToken, bool, error) {
	r.RevokedAt = stamp(s.now)
	r.ExpiresAt = r.ExpiresAt.UTC().Truncate(0)
	if err := r.Validate(); err != nil {
		return identity.RevokedToken{}, false, fmt.Errorf("revoke token: %w", err)
	}
	r.ExpiresAt = fromMicros(toMicros(r.ExpiresAt))
	created := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM revoked_tokens WHERE expires_at <= $1`, s.deadBefore()); err != nil {
			return err
		}
		prev, err := scanRevoked(tx.QueryRowContext(ctx, `SELECT `+revokedColumns+` FROM revoked_tokens WHERE jti = $1`, r.JTI))
		switch {
		case err == nil && prev.AgentID != r.AgentID:
			return fmt.Errorf("%w: jti %s is revoked already, as a token of agent %s", identity.ErrConflict, r.JTI, prev.AgentID)
		case err == nil && !r.ExpiresAt.After(prev.ExpiresAt):
			r = prev
			return nil
		case err == nil:
			// Another token with this jti lives longer (an issuer sharing
			// JWT_SECRET may reuse a jti): the revocation must last until
			// its exp too, or that token comes back once the first
			// expires. Deleted and inserted again, not updated, so that
			// PostgreSQL's insert trigger tells every replica.
			prev.ExpiresAt = r.ExpiresAt
			r = prev
			if _, err := tx.ExecContext(ctx, `DELETE FROM revoked_tokens WHERE jti = $1`, r.JTI); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO revoked_tokens (jti, agent_id, expires_at, revoked_at, reason)
				VALUES ($1, $2, $3, $4, $5)`, r.JTI, r.AgentID, toMicros(r.ExpiresAt), toMicros(r.RevokedAt), r.Reason)
			return err
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM revoked_tokens`).Scan(&n); err != nil {
			return err
		}
		if n >= s.revokedLimit() {
			return fmt.Errorf("%w: %d tokens that have not expired are revoked, the limit is %d", identity.ErrTooManyRevocations, n, s.revokedLimit())
		}
		created = true
		_, err = tx.ExecContext(ctx, `INSERT INTO revoked_tokens (jti, agent_id, expires_at, revoked_at, reason)
			VALUES ($1, $2, $3, $4, $5)`, r.JTI, r.AgentID, toMicros(r.ExpiresAt), toMicros(r.RevokedAt), r.Reason)
		return err
	})
	if err != nil {
		return identity.RevokedToken{}, false, fmt.Errorf("revoke token of agent %s: %w", r.AgentID, conflictOr(err))
	}
	return r, created, nil
}

const revokedColumns = `jti, agent_id, expires_at, revoked_at, reason`

func scanRevoked(sc rowScanner) (identity.RevokedToken, error) {
	var (
		r            identity.RevokedToken
		exp, revoked int64
	)
	if err := sc.Scan(&r.JTI, &r.AgentID, &exp, &revoked, &r.Reason); err != nil {
		return identity.RevokedToken{}, err
	}
	r.ExpiresAt, r.RevokedAt = fromMicros(exp), fromMicros(revoked)
	return r, nil
}

// ListRevokedTokens returns the live revocations (identity.RevokedToken.Live
// at now) whose jti sorts after after, in byte-wise jti order, at most
// limit (1 to identity.MaxRevokedTokens, which returns them all; else
// ErrInvalidFilter).
func (s *db) ListRevokedTokens(ctx context.Context, after string, limit int) ([]identity.RevokedToken, error) {
	if limit < 1 || limit > identity.MaxRevokedTokens {
		return nil, fmt.Errorf("list revoked tokens: %w: limit %d is outside 1..%d", ErrInvalidFilter, limit, identity.MaxRevokedTokens)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+revokedColumns+` FROM revoked_tokens
		WHERE expires_at > $1 AND jti > $2 ORDER BY jti LIMIT $3`, s.deadBefore(), after, limit)
	if err != nil {
		return nil, fmt.Errorf("list revoked tokens: %w", err)
	}
	defer rows.Close()
	out := []identity.RevokedToken{}
	for rows.Next() {
		r, err := scanRevoked(rows)
		if err != nil {
			return nil, fmt.Errorf("list revoked tokens: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revoked tokens: %w", err)
	}
	return out, nil
}
