package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
)

// ErrSecretName: a secret's name or size is outside its bounds.
var ErrSecretName = errors.New("invalid secret request")

// Secret returns the secret called name, generating size random bytes the
// first time any replica asks: the first insert wins, and every later call,
// on this replica or another sharing the database, reads what it stored.
// A stored secret shorter than size is an error, never padded or replaced.
func (s *db) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	if name == "" || len(name) > 64 || size < 16 || size > 1024 {
		return nil, fmt.Errorf("%w: name %q, %d bytes", ErrSecretName, name, size)
	}
	fresh := make([]byte, size)
	_, _ = rand.Read(fresh) // never fails on supported platforms (Go 1.24+)
	if _, err := s.w.ExecContext(ctx, `INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		name, fresh, toMicros(stamp(s.now))); err != nil {
		return nil, fmt.Errorf("secret %s: storing: %w", name, err)
	}
	var got []byte
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&got); err != nil {
		return nil, fmt.Errorf("secret %s: reading: %w", name, err)
	}
	if len(got) < size {
		return nil, fmt.Errorf("secret %s: the stored one has %d bytes, fewer than %d", name, len(got), size)
	}
	return got[:size], nil
}
