package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestRevokedTokensBounded: past the limit of live revocations a new one
// is refused with ErrTooManyRevocations and nothing is stored; revoking a
// jti held already still answers; a revocation whose token has expired is
// pruned and frees its place. The limit is lowered to 2 here (it is
// identity.MaxRevokedTokens otherwise), on both backends.
func TestRevokedTokensBounded(t *testing.T) {
	backends := map[string]func(t *testing.T) *db{
		"sqlite": func(t *testing.T) *db {
			s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "m.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return &s.db
		},
		"postgres": func(t *testing.T) *db {
			s, err := OpenPostgres(t.Context(), pgtest.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return &s.db
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			s.maxRevoked = 2
			ctx := t.Context()
			agent := identity.NewAgentID()
			clock := time.Now()
			s.now = func() time.Time { return clock }
			rt := func(jti string, exp time.Duration) identity.RevokedToken {
				return identity.RevokedToken{JTI: jti, AgentID: agent, ExpiresAt: clock.Add(exp)}
			}
			for _, r := range []identity.RevokedToken{rt("short", time.Minute), rt("long", time.Hour)} {
				if _, _, err := s.RevokeToken(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			if _, created, err := s.RevokeToken(ctx, rt("third", time.Hour)); !errors.Is(err, identity.ErrTooManyRevocations) || created {
				t.Fatalf("a third live revocation: %v (created %v), want ErrTooManyRevocations", err, created)
			}
			if _, created, err := s.RevokeToken(ctx, rt("long", time.Hour)); err != nil || created {
				t.Fatalf("revoking a held jti again at the limit: %v (created %v), want it answered", err, created)
			}
			list, err := s.ListRevokedTokens(ctx, "", identity.MaxRevokedTokens)
			if err != nil || len(list) != 2 || list[0].JTI != "long" || list[1].JTI != "short" {
				t.Fatalf("after the refusal: %+v, %v; want long and short only", list, err)
			}
			// "short" dies a minute plus the leeway on: its place is free.
			clock = clock.Add(time.Minute + identity.Leeway)
			if _, created, err := s.RevokeToken(ctx, rt("third", time.Hour)); err != nil || !created {
				t.Fatalf("once a revocation is dead: %v (created %v), want the new one stored", err, created)
			}
			var n int
			if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM revoked_tokens`).Scan(&n); err != nil || n != 2 {
				t.Fatalf("%d rows (%v), want 2: the dead one pruned", n, err)
			}
		})
	}
}
