// Command auditstorage measures what the audit trail costs on disk and how
// fast its queries answer (make bench-audit-storage; docs/performance.md):
// it writes N realistic records through the real audit writer into a fresh
// SQLite database and, given -pg, a PostgreSQL one, then reports bytes per
// decision (SQLite: the file after a WAL checkpoint; PostgreSQL: the audit
// table with its indexes and TOAST) and the median time of every query
// the CLI and admin API offer.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// trail is what the queries need of a store.
type trail interface {
	audit.Store
	audit.Chains
	QueryAudit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error)
	AuditRecord(ctx context.Context, id string) (audit.Record, bool, error)
	AuditStats(ctx context.Context, from, to time.Time) (audit.Stats, error)
	AuditPerMinute(ctx context.Context, from, to time.Time) ([]audit.Minute, error)
	AgentLastSeen(ctx context.Context, id string) (time.Time, bool, error)
	Close() error
}

func main() {
	n := flag.Int("records", 100_000, "records to write")
	pg := flag.String("pg", os.Getenv("MESHGUARD_TEST_DATABASE_URL"), "PostgreSQL URL of an empty database (empty: SQLite only)")
	runs := flag.Int("runs", 7, "times each query runs (the median is reported)")
	keep := flag.String("keep", "", "write the SQLite database into this directory and keep it (for EXPLAIN; empty: a temporary one)")
	flag.Parse()
	ctx := context.Background()
	if err := run(ctx, *n, *pg, *runs, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "auditstorage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int, pg string, runs int, keep string) error {
	dir := keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "auditstorage-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	path := filepath.Join(dir, "meshguard.db")
	s, err := store.OpenSQLite(ctx, path)
	if err != nil {
		return err
	}
	recs := records(n)
	if err := measure(ctx, "sqlite", s, recs, runs, func() (int64, error) { return sqliteBytes(ctx, s, path) }); err != nil {
		return err
	}
	if pg == "" {
		return nil
	}
	p, err := store.OpenPostgres(ctx, pg)
	if err != nil {
		return err
	}
	return measure(ctx, "postgres", p, recs, runs, func() (int64, error) { return postgresBytes(ctx, pg) })
}

func measure(ctx context.Context, name string, s trail, recs []audit.Record, runs int, size func() (int64, error)) error {
	defer s.Close()
	w, err := audit.NewWriter(ctx, s, audit.WriterConfig{FlushInterval: 20 * time.Millisecond, MaxBatch: 4096, MaxLag: time.Hour})
	if err != nil {
		return err
	}
	start := time.Now()
	for _, r := range recs {
		if err := w.Write(ctx, r); err != nil {
			return err
		}
	}
	if err := w.Close(ctx); err != nil {
		return err
	}
	took := time.Since(start)
	bytes, err := size()
	if err != nil {
		return err
	}
	n := len(recs)
	fmt.Printf("%s: %d records written in %v (%.0f records/s), %d bytes on disk, %.0f bytes a decision\n",
		name, n, took.Round(time.Millisecond), float64(n)/took.Seconds(), bytes, float64(bytes)/float64(n))

	mid := recs[n/2]
	day := mid.Timestamp.Add(-12 * time.Hour)
	page, err := s.QueryAudit(ctx, store.AuditFilter{})
	if err != nil {
		return err
	}
	queries := []struct {
		name string
		do   func() (int, error)
	}{
		{"newest page", func() (int, error) { return q(s.QueryAudit(ctx, store.AuditFilter{})) }},
		{"next page (cursor)", func() (int, error) { return q(s.QueryAudit(ctx, store.AuditFilter{Before: page.Next})) }},
		{"by agent", func() (int, error) { return q(s.QueryAudit(ctx, store.AuditFilter{AgentID: mid.AgentID})) }},
		{"by decision=deny", func() (int, error) { return q(s.QueryAudit(ctx, store.AuditFilter{Decision: "deny"})) }},
		{"by action", func() (int, error) { return q(s.QueryAudit(ctx, store.AuditFilter{Action: "write:deploy"})) }},
		{"by action prefix", func() (int, error) { return q(s.QueryAudit(ctx, store.AuditFilter{Action: "call:*"})) }},
		{"agent+deny+hour", func() (int, error) {
			return q(s.QueryAudit(ctx, store.AuditFilter{AgentID: mid.AgentID, Decision: "deny", From: mid.Timestamp.Add(-time.Hour), To: mid.Timestamp}))
		}},
		{"time range (1 h)", func() (int, error) {
			return q(s.QueryAudit(ctx, store.AuditFilter{From: mid.Timestamp.Add(-time.Hour), To: mid.Timestamp}))
		}},
		{"by trace id", func() (int, error) { return q(s.QueryAudit(ctx, store.AuditFilter{TraceID: mid.TraceID})) }},
		{"by id", func() (int, error) {
			_, ok, err := s.AuditRecord(ctx, mid.ID)
			if !ok && err == nil {
				err = fmt.Errorf("record %s not found", mid.ID)
			}
			return 1, err
		}},
		{"stats (1 day)", func() (int, error) {
			st, err := s.AuditStats(ctx, day, day.Add(24*time.Hour))
			return int(st.Total), err
		}},
		{"timeline (1 day)", func() (int, error) {
			m, err := s.AuditPerMinute(ctx, day, day.Add(24*time.Hour))
			return len(m), err
		}},
		{"agent last seen", func() (int, error) {
			_, ok, err := s.AgentLastSeen(ctx, mid.AgentID)
			if !ok && err == nil {
				err = fmt.Errorf("agent %s never seen", mid.AgentID)
			}
			return 1, err
		}},
		{"verify the chain", func() (int, error) {
			v, err := audit.VerifyChains(ctx, s)
			return int(v), err
		}},
	}
	for _, qu := range queries {
		var times []time.Duration
		rows := 0
		for range runs {
			t := time.Now()
			got, err := qu.do()
			if err != nil {
				return fmt.Errorf("%s: %s: %w", name, qu.name, err)
			}
			times = append(times, time.Since(t))
			rows = got
		}
		slices.Sort(times)
		fmt.Printf("%s: %-20s %10v  (%d rows; range %v–%v)\n", name, qu.name, times[len(times)/2].Round(time.Microsecond),
			rows, times[0].Round(time.Microsecond), times[len(times)-1].Round(time.Microsecond))
	}
	return nil
}

func q(p store.AuditPage, err error) (int, error) { return len(p.Records), err }

// sqliteBytes is the database's size once the WAL is checkpointed into it.
func sqliteBytes(ctx context.Context, s *store.SQLite, path string) (int64, error) {
	_ = s // idle: the writer has closed, so the checkpoint finds no reader
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var pages, free, size int64
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, err
	}
	for _, p := range []struct {
		q   string
		dst *int64
	}{{`PRAGMA page_count`, &pages}, {`PRAGMA freelist_count`, &free}, {`PRAGMA page_size`, &size}} {
		if err := db.QueryRowContext(ctx, p.q).Scan(p.dst); err != nil {
			return 0, err
		}
	}
	var avg float64
	var sample string
	if err := db.QueryRowContext(ctx, `SELECT AVG(length(record)), (SELECT record FROM audit ORDER BY seq LIMIT 1) FROM audit`).Scan(&avg, &sample); err == nil {
		fmt.Printf("sqlite:   stored record: %.0f bytes on average; the first: %s\n", avg, sample)
	}
	// Per table and index, where the build has the dbstat table.
	if rows, err := db.QueryContext(ctx, `SELECT name, SUM(pgsize) FROM dbstat WHERE name LIKE 'audit%' OR name LIKE 'sqlite_autoindex_audit%' GROUP BY name ORDER BY 2 DESC`); err == nil {
		for rows.Next() {
			var name string
			var b int64
			if rows.Scan(&name, &b) == nil {
				fmt.Printf("sqlite:   %-28s %12d bytes\n", name, b)
			}
		}
		_ = rows.Close()
	}
	return (pages - free) * size, nil
}

// postgresBytes is the audit table's total size: heap, TOAST and indexes.
func postgresBytes(ctx context.Context, url string) (int64, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE audit`); err != nil {
		return 0, err
	}
	rows, err := db.QueryContext(ctx, `SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c
		WHERE c.oid = 'audit'::regclass OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'audit'::regclass)
		   OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'audit'::regclass) ORDER BY 2 DESC`)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var name string
		var b int64
		if err := rows.Scan(&name, &b); err != nil {
			return 0, err
		}
		fmt.Printf("postgres: %-28s %12d bytes\n", name, b)
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	var total int64
	err = db.QueryRowContext(ctx, `SELECT pg_total_relation_size('audit')`).Scan(&total)
	return total, err
}

// records are n decisions over a week, shaped like the engine's: ids with
// a millisecond prefix and random bits, random trace ids, 60 agents, tool
// calls with arguments, writes, reads, some delegated, a fifth denied.
func records(n int) []audit.Record {
	hexs := func(k int) string {
		b := make([]byte, k)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	start := time.Now().UTC().Add(-7 * 24 * time.Hour)
	step := 7 * 24 * time.Hour / time.Duration(n)
	out := make([]audit.Record, n)
	for i := range out {
		at := start.Add(time.Duration(i) * step)
		dec := fmt.Sprintf("%012x", at.UnixMilli()) + hexs(6)
		ag := fmt.Sprintf("agent_%020d", i%60)
		tags := []string{[]string{"mailer", "ops", "planner"}[i%3]}
		r := audit.Record{ID: "aud_" + dec, Timestamp: at, TraceID: hexs(16), SpanID: hexs(8), DecisionID: "dec_" + dec,
			AgentID: ag, AgentName: fmt.Sprintf("%s-%d", tags[0], i%60), TrustTier: "verified", Host: "api.internal",
			Chain: []string{ag}, Source: "ext_authz-grpc", SourceAddress: "10.0.3.17", PolicyRevision: "r" + fmt.Sprint(17),
			LatencyUs: int64(30 + i%40), Mode: "enforce", Decision: "allow", Status: 200, Policy: tags[0] + "s", Rule: "reads",
			Inputs: &audit.Inputs{Tags: tags}}
		switch i % 5 {
		case 0, 1:
			to := "ann@ours.example"
			r.Action, r.Resource, r.Method, r.Path, r.Rule = "call:mail/send_email", "/mcp", "POST", "/mcp", "calls"
			if i%7 == 0 {
				to = "eve@evil.example"
				r.Decision, r.Status, r.Reason, r.Rule = "deny", 403, "policy_denied", "external"
			}
			r.Context = map[string]any{"arguments.to": to}
			r.Call = &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: fmt.Sprint(i)}
		case 2:
			r.Action, r.Resource, r.Method, r.Path, r.Rule = "write:deploy", "/deploy", "POST", "/deploy", "office-hours"
			if i%3 == 0 {
				r.Decision, r.Status, r.Reason, r.Rule = "deny", 403, "no_matching_rule", ""
			}
		default:
			r.Action, r.Resource, r.Method, r.Path = "read:secret/plan", "/secret/plan", "GET", "/secret/plan"
			if i%10 == 3 {
				p := "agent_00000000000000000002"
				r.Chain = []string{p, ag}
				r.DelegationDepth = 1
				r.Inputs.Chain = []audit.ChainMember{{Name: "planner-2", Tier: "trusted", Tags: []string{"planner"}}}
			}
		}
		out[i] = r
	}
	return out
}
