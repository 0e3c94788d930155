package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// checkpointBackend is a store and a raw connection to its database, the
// way an attacker with database access (or a lossy failover) reaches it.
type checkpointBackend struct {
	name string
	open func(t *testing.T) (interface {
		audit.Store
		audit.Chains
	}, *sql.DB)
}

func checkpointBackends() []checkpointBackend {
	return []checkpointBackend{
		{"sqlite", func(t *testing.T) (interface {
			audit.Store
			audit.Chains
		}, *sql.DB) {
			path := filepath.Join(t.TempDir(), "audit.db")
			s, err := store.OpenSQLite(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			raw, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = raw.Close() })
			return s, raw
		}},
		{"postgres", func(t *testing.T) (interface {
			audit.Store
			audit.Chains
		}, *sql.DB) {
			u := pgtest.NewDatabase(t)
			s, err := store.OpenPostgres(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			raw, err := sql.Open("pgx", u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = raw.Close() })
			return s, raw
		}},
	}
}

// appendSealed appends n records to s's chain, sealed after its head.
func appendSealed(t *testing.T, s audit.Store, from, n int) {
	t.Helper()
	prev, err := s.LastAuditHash(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]audit.Record, n)
	for i := range rs {
		rs[i] = audit.Record{ID: fmt.Sprintf("aud_%04d", from+i), Timestamp: time.Now().UTC().Truncate(time.Microsecond),
			AgentID: "agent_a", Action: "read:x", Decision: "allow", Status: 200, Mode: "enforce"}
		if err := rs[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = rs[i].Hash
	}
	if err := s.AppendAudit(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
}

// signHeads signs the current heads of every chain, as the server does.
func signHeads(t *testing.T, c audit.Chains, signer *audit.CheckpointSigner) *audit.Checkpoint {
	t.Helper()
	cp, err := audit.SignHeads(t.Context(), c, signer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	opened, err := audit.OpenCheckpoint(cp.Note, signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return &opened
}

// TestCheckpointCatchesDeletedTail: the newest committed records are
// deleted (by hand, or by a failover to a replica that never had them).
// No hash link shows it — the records left still verify — but a
// checkpoint signed before proves the trail no longer reaches it.
func TestCheckpointCatchesDeletedTail(t *testing.T) {
	for _, b := range checkpointBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				damage string // SQL run on the raw database
				want   string
			}{
				{"newest rows deleted", `DELETE FROM audit WHERE seq > (SELECT MAX(seq) - 3 FROM audit)`, "deleted"},
				{"every row deleted", `DELETE FROM audit`, "deleted"},
				{"checkpointed row replaced", `UPDATE audit SET hash = prev_hash WHERE seq = (SELECT MAX(seq) - 2 FROM audit)`, "replaced"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					s, raw := b.open(t)
					signer, err := audit.NewCheckpointSigner(audit.GenerateCheckpointKey())
					if err != nil {
						t.Fatal(err)
					}
					appendSealed(t, s, 0, 10)
					cp := signHeads(t, s, signer)
					appendSealed(t, s, 10, 2)
					rep, err := audit.Verify(t.Context(), s, audit.VerifyOptions{Checkpoint: cp})
					if err != nil || rep.FromCheckpoint != 1 || rep.Verified != 2 {
						t.Fatalf("before the damage: %+v, %v; want the 2 records after the checkpoint verified from it", rep, err)
					}
					if _, err := raw.ExecContext(t.Context(), tc.damage); err != nil {
						t.Fatal(err)
					}
					if tc.name == "newest rows deleted" && b.name == "sqlite" {
						// The chain alone cannot tell: what is left verifies.
						if _, err := audit.VerifyChains(t.Context(), s); err != nil {
							t.Fatalf("without the checkpoint: %v", err)
						}
					}
					_, err = audit.Verify(t.Context(), s, audit.VerifyOptions{Checkpoint: cp})
					var brk *audit.Break
					if !errors.Is(err, audit.ErrCheckpointNotReached) || !errors.As(err, &brk) || !strings.Contains(brk.Why, tc.want) {
						t.Fatalf("after the damage: %v; want the checkpoint not reached (%s)", err, tc.want)
					}
					t.Logf("%v", err)
				})
			}
		})
	}
}

// TestCheckpointSurvivesRetention: retention deleting the checkpointed
// record is not a loss; what is left is verified from its anchor.
func TestCheckpointSurvivesRetention(t *testing.T) {
	s, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	signer, err := audit.NewCheckpointSigner(audit.GenerateCheckpointKey())
	if err != nil {
		t.Fatal(err)
	}
	appendSealed(t, s, 0, 5)
	cp := signHeads(t, s, signer)
	appendSealed(t, s, 5, 3)
	if _, err := s.PruneAudit(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	appendSealed(t, s, 8, 2)
	rep, err := audit.Verify(t.Context(), s, audit.VerifyOptions{Checkpoint: cp})
	if err != nil || rep.Verified != 2 || len(rep.Notes) != 1 {
		t.Fatalf("Verify = %+v, %v; want the 2 records after the anchor and a note", rep, err)
	}
}
