package store

import (
	"database/sql"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store/pgtest"
)

// oldTrail is a database at the schema before the compact audit form, and
// how to open the store on it (which migrates it).
type oldTrail struct {
	name  string
	setUp func(t *testing.T) (raw *sql.DB, open func() (*db, func() error))
}

func oldTrails() []oldTrail { return trailsAt(12, 15) }

// trailsAt is oldTrails at the schema of the first sqliteN and postgresN
// migrations.
func trailsAt(sqliteN, postgresN int) []oldTrail {
	return []oldTrail{
		{"sqlite", func(t *testing.T) (*sql.DB, func() (*db, func() error)) {
			path := t.TempDir() + "/mg.db"
			raw, err := openPool(t.Context(), sqliteDSN(path, time.Second, connWriter), 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = raw.Close() })
			migrateTo(t, raw, sqliteMigrations, "migrations/sqlite", sqliteMigrationsDDL, sqliteN)
			return raw, func() (*db, func() error) {
				s, err := OpenSQLite(t.Context(), path)
				if err != nil {
					t.Fatal(err)
				}
				return &s.db, s.Close
			}
		}},
		{"postgres", func(t *testing.T) (*sql.DB, func() (*db, func() error)) {
			u := pgtest.NewDatabase(t)
			raw, err := sql.Open("pgx", u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = raw.Close() })
			migrateTo(t, raw, postgresMigrations, "migrations/postgres", postgresMigrationsDDL, postgresN)
			return raw, func() (*db, func() error) {
				s, err := OpenPostgres(t.Context(), u, WithAuditChain("replica-1"))
				if err != nil {
					t.Fatal(err)
				}
				return &s.db, s.Close
			}
		}},
	}
}

// migrateTo runs the first n migrations of dir in fsys on raw.
func migrateTo(t *testing.T, raw *sql.DB, fsys fs.FS, dir, ddl string, n int) {
	t.Helper()
	ms, err := loadMigrations(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := (migrator{ddl: ddl, migrations: ms[:n], now: time.Now}).run(t.Context(), raw); err != nil {
		t.Fatal(err)
	}
}

// writeOld stores rs as the schema before 0013/0016 did: the canonical
// JSON as text, hex hashes, on one chain after an anchor (as if retention
// had deleted the records before rs[0]).
func writeOld(t *testing.T, raw *sql.DB, rs []audit.Record) {
	t.Helper()
	ctx := t.Context()
	chain := oldChain(t, raw, rs)
	for _, r := range rs {
		canon, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ExecContext(ctx, `INSERT INTO audit (chain_id, id, ts, agent_id, action, decision, trace_id, status, reason, source, record, prev_hash, hash)
			VALUES ($13, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, r.ID, r.Timestamp.UnixMicro(), r.AgentID, r.Action, r.Decision,
			r.TraceID, r.Status, r.Reason, r.Source, string(canon), r.PrevHash, r.Hash, chain); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO audit_anchors (chain_id, last_seq, last_hash, last_ts, deleted, pruned_at) VALUES ($2, 0, $1, 0, 2, 0)`,
		rs[0].PrevHash, chain); err != nil {
		t.Fatal(err)
	}
}

// TestOldTrailMigrates: a trail written by the schema before the compact
// form verifies after the migration with the same hashes, answers the same
// queries, takes new (compact) records after it, and an edit made before
// the migration is still found.
func TestOldTrailMigrates(t *testing.T) {
	for _, tr := range oldTrails() {
		t.Run(tr.name, func(t *testing.T) {
			ctx := t.Context()
			all := compactRecords(t, audit.GenesisHash, 12)
			old, later := all[2:8], all[8:]
			raw, open := tr.setUp(t)
			writeOld(t, raw, old)
			s, closeStore := open()
			t.Cleanup(func() { _ = closeStore() })

			if n, err := audit.VerifyChains(ctx, s); n != int64(len(old)) || err != nil {
				t.Fatalf("verify after migrating: %d, %v", n, err)
			}
			if h, err := s.LastAuditHash(ctx); h != old[len(old)-1].Hash || err != nil {
				t.Fatalf("last hash after migrating: %q %v", h, err)
			}
			want := canonicals(t, old)
			for _, f := range []AuditFilter{{}, {AgentID: "agent_1"}, {Decision: "deny"}, {Shadow: true}, {TraceID: old[3].TraceID}, {Action: "call:*"}} {
				page, err := s.QueryAudit(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Records) == 0 {
					t.Fatalf("%+v: nothing found", f)
				}
				for i, r := range page.Records {
					j := slices.IndexFunc(old, func(o audit.Record) bool { return o.ID == r.ID })
					if j < 0 || canonicals(t, page.Records)[i] != want[j] || r.Hash != old[j].Hash || r.PrevHash != old[j].PrevHash {
						t.Errorf("%+v: %s reads back changed", f, r.ID)
					}
				}
			}
			if err := s.AppendAudit(ctx, later); err != nil {
				t.Fatal(err)
			}
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(old)+len(later)) || err != nil {
				t.Fatalf("verify old and new records: %d, %v", n, err)
			}
		})
	}
}

// TestOldTrailEditStillFound: an old row whose column was edited before
// the migration still fails verification after it.
func TestOldTrailEditStillFound(t *testing.T) {
	for _, tr := range oldTrails() {
		t.Run(tr.name, func(t *testing.T) {
			ctx := t.Context()
			rs := compactRecords(t, audit.GenesisHash, 8)
			raw, open := tr.setUp(t)
			writeOld(t, raw, rs)
			if _, err := raw.ExecContext(ctx, `UPDATE audit SET reason = 'edited' WHERE id = $1`, rs[5].ID); err != nil {
				t.Fatal(err)
			}
			s, closeStore := open()
			t.Cleanup(func() { _ = closeStore() })
			var brk *audit.Break
			if _, err := audit.VerifyChains(ctx, s); !errors.As(err, &brk) || brk.ID != rs[5].ID {
				t.Fatalf("verify: %v; want the edited record %s named", err, rs[5].ID)
			}
		})
	}
}

// writeRoundOne stores rs as migrations 0013/0016 did: the compact record,
// 32-byte hashes, the agent's id in its row.
func writeRoundOne(t *testing.T, raw *sql.DB, rs []audit.Record) {
	t.Helper()
	ctx := t.Context()
	chain := oldChain(t, raw, rs)
	for _, r := range rs {
		body, prev, hash := compactRow(t, r)
		if _, err := raw.ExecContext(ctx, `INSERT INTO audit (chain_id, id, ts, agent_id, action, decision, trace_id, status, reason, source, shadow, record, prev_hash, hash)
			VALUES ($14, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, r.ID, r.Timestamp.UnixMicro(), r.AgentID, r.Action, r.Decision,
			r.TraceID, r.Status, r.Reason, r.Source, r.Shadow != nil, body, prev, hash, chain); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO audit_anchors (chain_id, last_seq, last_hash, last_ts, deleted, pruned_at) VALUES ($2, 0, $1, 0, 2, 0)`,
		rs[0].PrevHash, chain); err != nil {
		t.Fatal(err)
	}
}

// TestRoundOneTrailMigrates: a trail in the first compact form (agent ids
// in the rows, every link stored) verifies after the agent dictionary's
// migration with the same hashes, answers every filter the same, and takes
// new records after it; an agent edited before the migration is still
// found.
func TestRoundOneTrailMigrates(t *testing.T) {
	for _, tr := range trailsAt(13, 16) {
		t.Run(tr.name, func(t *testing.T) {
			ctx := t.Context()
			all := compactRecords(t, audit.GenesisHash, 12)
			old, later := all[2:8], all[8:]
			raw, open := tr.setUp(t)
			writeRoundOne(t, raw, old)
			s, closeStore := open()
			t.Cleanup(func() { _ = closeStore() })
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(old)) || err != nil {
				t.Fatalf("verify after migrating: %d, %v", n, err)
			}
			want := canonicals(t, old)
			for _, f := range []AuditFilter{{}, {AgentID: "agent_1"}, {AgentID: "agent_2", Decision: "deny"}, {Decision: "deny"}, {TraceID: old[3].TraceID}} {
				page, err := s.QueryAudit(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				var got, wantIDs []string
				for i, r := range page.Records {
					got = append(got, r.ID)
					j := slices.IndexFunc(old, func(o audit.Record) bool { return o.ID == r.ID })
					if j < 0 || canonicals(t, page.Records)[i] != want[j] || r.Hash != old[j].Hash || r.PrevHash != old[j].PrevHash {
						t.Errorf("%+v: %s reads back changed", f, r.ID)
					}
				}
				for i := len(old) - 1; i >= 0; i-- {
					r := old[i]
					if (f.AgentID == "" || r.AgentID == f.AgentID) && (f.Decision == "" || r.Decision == f.Decision) && (f.TraceID == "" || r.TraceID == f.TraceID) {
						wantIDs = append(wantIDs, r.ID)
					}
				}
				if !slices.Equal(got, wantIDs) {
					t.Errorf("%+v: got %v, want %v", f, got, wantIDs)
				}
			}
			st, err := s.AuditStats(ctx, old[0].Timestamp, later[0].Timestamp)
			var agents []string
			for _, c := range st.Agents {
				agents = append(agents, c.Key)
			}
			slices.Sort(agents)
			if err != nil || !slices.Equal(agents, []string{"agent_0", "agent_1", "agent_2"}) || st.Total != int64(len(old)) {
				t.Fatalf("stats after migrating: %+v, %v", st, err)
			}
			if err := s.AppendAudit(ctx, later); err != nil {
				t.Fatal(err)
			}
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(old)+len(later)) || err != nil {
				t.Fatalf("verify old and new records: %d, %v", n, err)
			}
		})
	}
}

// oldChain is the chain an old trail is written to: SQLite's one chain,
// "", or on PostgreSQL (which has audit_chains) "replica-1", registered
// with rs's last hash as its head.
func oldChain(t *testing.T, raw *sql.DB, rs []audit.Record) string {
	t.Helper()
	ctx := t.Context()
	var pg int
	if raw.QueryRowContext(ctx, `SELECT 1 FROM pg_class WHERE relname = 'audit_chains'`).Scan(&pg) != nil {
		return ""
	}
	const chain = "replica-1"
	if _, err := raw.ExecContext(ctx, `INSERT INTO audit_chains (chain_id, head, records, created_at, updated_at) VALUES ($1, $2, $3, 0, 0)`,
		chain, rs[len(rs)-1].Hash, len(rs)); err != nil {
		t.Fatal(err)
	}
	return chain
}

// compactRow is r's compact body and binary hashes, as migrations 0013/0016
// and later store them.
func compactRow(t *testing.T, r audit.Record) (body, prev, hash []byte) {
	t.Helper()
	canon, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if body, err = encodeAuditBody(&r, canon); err != nil {
		t.Fatal(err)
	}
	prev, _ = hashBytes(r.PrevHash)
	hash, _ = hashBytes(r.Hash)
	return body, prev, hash
}
