package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/meshguard/meshguard/identity"
)

//go:embed migrations/postgres/*.sql
var postgresMigrations embed.FS

var (
	_ identity.AgentSource = (*Postgres)(nil)
	_ identity.KeyStore    = (*Postgres)(nil)
)

// Postgres is the store for several replicas sharing one PostgreSQL
// database, with the same methods as SQLite (they are db's, shared). It is
// safe for concurrent use.
//
// Writes other than audit appends take one transaction-scoped advisory lock
// (writeLockSQL), so they run one at a time across all replicas, as SQLite's
// writer does: admin writes are rare, and the checks they make before
// writing (a name is free, one key is current) stay true until commit under
// PostgreSQL's default READ COMMITTED isolation. Audit appends skip it: each
// handle appends to its own hash chain (see doc.go).
type Postgres struct {
	db
	pool *sql.DB
	cfg  *pgx.ConnConfig // for Watch's own connection

	lastSweep atomic.Int64 // of expired rate counts, unix microseconds
}

// writeLockSQL serializes Postgres writers. The key is arbitrary but fixed
// ("mesh" in ASCII); advisory locks are per database.
const writeLockSQL = `SELECT pg_advisory_xact_lock(1835365224)`

// postgresMigrationsDDL creates schema_migrations. Two replicas starting on
// an empty database would race in CREATE TABLE IF NOT EXISTS (it is not
// atomic: the loser fails on pg_type's unique index), so the statement runs
// behind a transaction-scoped advisory lock: without arguments the driver
// sends both statements as one simple query, one implicit transaction.
const postgresMigrationsDDL = `SELECT pg_advisory_xact_lock(1835365225);
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    applied_at  BIGINT  NOT NULL
)`

// postgresTagClause is ListAgents' tag test: tags holds a JSON array.
const postgresTagClause = `agents.tags::jsonb ? $tag`

// WithAuditChain names the hash chain a Postgres handle appends audit
// records to. Default: the host name and a random suffix, new for every
// OpenPostgres, so no two processes ever share a chain. A fixed name lets a
// restarted replica continue its chain; two live handles given the same
// name make appends fail with identity.ErrConflict rather than interleave.
// SQLite ignores it: its file has one chain.
func WithAuditChain(id string) Option { return func(o *options) { o.auditChain = id } }

// OpenPostgres connects to the database at url (postgres:// or
// postgresql://) and brings its schema up to date; replicas starting
// together migrate once. WithMaxReaders sets the connection pool's size
// (default: GOMAXPROCS, at least 4, plus 4 for writers); WithBusyTimeout is
// ignored.
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (*Postgres, error) {
	o := options{maxReaders: defaultReaders(), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.maxReaders < 1:
		return nil, fmt.Errorf("open postgres: max readers %d: need at least 1", o.maxReaders)
	case o.now == nil:
		return nil, errors.New("open postgres: nil clock")
	}
	where, err := redact(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("open postgres %s: invalid connection URL", where)
	}
	if o.auditChain == "" {
		if o.auditChain, err = newChainID(); err != nil {
			return nil, fmt.Errorf("open postgres %s: %w", where, err)
		}
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, set := cfg.RuntimeParams["plan_cache_mode"]; !set {
		// The driver keeps every statement prepared, but PostgreSQL planned
		// the audit reads again at each execution (a custom plan: 120–240
		// µs for the select's correlated lookups, more than running it).
		// A generic plan is made once per connection and statement.
		cfg.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	pool := stdlib.OpenDB(*cfg)
	pool.SetMaxOpenConns(o.maxReaders + 4)
	pool.SetMaxIdleConns(o.maxReaders + 4)
	// Recycle connections now and then so a fail-over or a PgBouncer
	// rebalance is followed without a restart.
	pool.SetConnMaxLifetime(30 * time.Minute)
	s := &Postgres{pool: pool, cfg: cfg, db: db{w: pool, r: pool, now: o.now, dialect: dialect{
		name: "postgres", tagClause: postgresTagClause, writeLock: writeLockSQL, auditChain: o.auditChain,
		skipLocked: " FOR UPDATE SKIP LOCKED", taggedCols: true,
	}}}
	if err := s.setUp(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	return s, nil
}

func (s *Postgres) setUp(ctx context.Context) error {
	if err := s.pool.PingContext(ctx); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	ms, err := loadMigrations(postgresMigrations, "migrations/postgres")
	if err != nil {
		return err
	}
	m := migrator{
		ddl: postgresMigrationsDDL,
		// Held to the end of each migration's transaction: a second
		// replica waits, then finds the migration applied.
		lock:       `LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE`,
		migrations: ms, now: s.now,
	}
	if err := m.run(ctx, s.pool); err != nil {
		return err
	}
	return s.prepare(ctx)
}

// AuditChain is the hash chain this handle appends audit records to.
func (s *Postgres) AuditChain() string { return s.dialect.auditChain }

// newChainID is a fresh chain name: the host name, for the operator
// reading it, and random bits, so that it is never another process's.
func newChainID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("audit chain id: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "meshguard"
	}
	return host + "-" + hex.EncodeToString(b[:]), nil
}

// redact returns url with any password replaced, for messages.
func redact(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return "", errors.New("expected a postgres:// or postgresql:// URL with a host")
	}
	return u.Redacted(), nil
}

// isPostgresUnique reports whether err is PostgreSQL's unique_violation.
func isPostgresUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// isPostgresDataError reports whether err is PostgreSQL refusing a value
// as data: SQLSTATE class 22 (data exception: an invalid byte sequence, a
// value too long) or 23 (integrity constraint violation: CHECK, NOT
// NULL, UNIQUE).
func isPostgresDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && len(pe.Code) == 5 && (pe.Code[:2] == "22" || pe.Code[:2] == "23")
}
