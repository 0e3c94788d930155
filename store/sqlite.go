package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/meshguard/meshguard/identity"
)

// The binary carries its migrations so a database and the code that reads it
// can never come from different releases.
//
//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

// The store implements the interfaces identity defines for it.
var (
	_ identity.AgentSource = (*SQLite)(nil)
	_ identity.KeyStore    = (*SQLite)(nil)
)

// SQLite is the embedded store: one database file in WAL mode. It is safe
// for concurrent use.
//
// Writes share a single connection. SQLite admits one writer at a time
// anyway; queueing writers in database/sql is cheaper and fairer than having
// several connections collide and sleep on SQLITE_BUSY. Reads use their own
// pool, which WAL lets run alongside the writer.
//
// Its methods are db's, shared with Postgres.
type SQLite struct {
	db
	ckpt *walCheckpointer
}

// Close stops the WAL checkpointer and closes the database. It is safe to
// call more than once.
func (s *SQLite) Close() error {
	var err error
	if s.ckpt != nil {
		err = s.ckpt.close()
	}
	if cerr := s.db.Close(); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("close sqlite: checkpointer: %w", err)
	}
	return nil
}

// Option configures OpenSQLite.
type Option func(*options)

type options struct {
	busyTimeout time.Duration
	maxReaders  int
	// checkpointEvery is how often the WAL is checkpointed (walcheckpoint.go).
	checkpointEvery time.Duration
	now             func() time.Time
	auditChain      string // Postgres only
}

// WithBusyTimeout sets how long a statement waits for a lock held by another
// process (the CLI, a backup) before failing. Default 5s.
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithMaxReaders sets the size of the read pool. Default: GOMAXPROCS, at
// least 4.
func WithMaxReaders(n int) Option { return func(o *options) { o.maxReaders = n } }

func defaultReaders() int { return max(4, runtime.GOMAXPROCS(0)) }

// WithClock sets the clock that stamps createdAt, updatedAt and migrations.
// Default time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// OpenSQLite opens (creating if needed) the database file at path and brings
// its schema up to date. The directory is created 0700 and a new file 0600:
// the database holds private signing keys.
func OpenSQLite(ctx context.Context, path string, opts ...Option) (*SQLite, error) {
	o := options{busyTimeout: 5 * time.Second, maxReaders: defaultReaders(), now: time.Now, checkpointEvery: DefaultCheckpointInterval}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.busyTimeout < 0:
		return nil, fmt.Errorf("open sqlite: busy timeout %v: must not be negative", o.busyTimeout)
	case o.maxReaders < 1:
		return nil, fmt.Errorf("open sqlite: max readers %d: need at least 1", o.maxReaders)
	case o.now == nil:
		return nil, errors.New("open sqlite: nil clock")
	case o.checkpointEvery <= 0:
		return nil, fmt.Errorf("open sqlite: checkpoint interval %v: must be positive", o.checkpointEvery)
	}
	// An in-memory or URI name would give each pool its own database, or
	// let a path smuggle in connection parameters.
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open sqlite: %q: expected a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// SQLite would create the file 0644; create it first so it never is.
	// Its -wal and -shm files take the main file's permissions.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}

	// What differs for SQLite: nothing to lock (the writer begins
	// IMMEDIATE), one audit chain, json_each for ListAgents' tag test.
	s := &SQLite{db: db{now: o.now, dialect: dialect{name: "sqlite", tagClause: sqliteTagClause, compactCols: true}, reads: newReadStmts()}}
	if s.w, err = openWriterPool(ctx, sqliteDSN(abs, o.busyTimeout, connWriter), s.inserts.closing); err != nil {
		return nil, fmt.Errorf("open sqlite %s: writer: %w", abs, err)
	}
	if err := s.setUp(ctx); err != nil {
		_ = s.w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	// Readers open after the writer has switched the file to WAL and
	// migrated it: they are query-only and could do neither.
	if s.r, err = openPool(ctx, sqliteDSN(abs, o.busyTimeout, connReader), o.maxReaders); err != nil {
		_ = s.w.Close()
		return nil, fmt.Errorf("open sqlite %s: readers: %w", abs, err)
	}
	if err := s.prepare(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	if s.ckpt, err = startCheckpointer(ctx, sqliteDSN(abs, o.busyTimeout, connCheckpointer), o.checkpointEvery); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	s.auditCommitted = s.ckpt.committed
	return s, nil
}

// setUp checks the journal mode and migrates.
func (s *SQLite) setUp(ctx context.Context) error {
	// journal_mode=WAL quietly stays at "delete" on file systems without
	// shared memory; readers would then block the writer, so say so now.
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, not wal; is the file on a network file system?", mode)
	}
	ms, err := loadMigrations(sqliteMigrations, "migrations/sqlite")
	if err != nil {
		return err
	}
	return migrator{ddl: sqliteMigrationsDDL, migrations: ms, now: s.now}.run(ctx, s.w)
}

const sqliteMigrationsDDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    applied_at  INTEGER NOT NULL
) STRICT`

// sqliteDSN builds a connection string. The pragmas are per connection
// (except journal_mode, which the file remembers), so the driver runs them on
// every connection it opens. The writer begins transactions IMMEDIATE: it
// takes the write lock up front, so a read-then-write transaction never has
// to upgrade its lock, which is the one case where SQLite returns
// SQLITE_BUSY at once instead of waiting busy_timeout.
func sqliteDSN(path string, busy time.Duration, role connRole) string {
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive letter
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	// In WAL mode NORMAL never corrupts the file and a process crash loses
	// nothing; only a power cut can lose the last commits. FULL would fsync
	// on every commit.
	q.Add("_pragma", "synchronous(NORMAL)")
	// Statement journals (a multi-row INSERT keeps one so a failing row
	// undoes only its statement) and temporary b-trees stay in memory:
	// on disk they cost the audit writer a write syscall per page, a
	// quarter of its time.
	q.Add("_pragma", "temp_store(MEMORY)")
	switch role {
	case connReader:
		q.Add("_pragma", "query_only(1)")
	case connWriter:
		q.Add("_pragma", "journal_mode(WAL)")
		// The checkpointer's connection checkpoints, not the commit
		// (walcheckpoint.go).
		q.Add("_pragma", "wal_autocheckpoint(0)")
		q.Set("_txlock", "immediate")
	case connCheckpointer:
		// It writes only the WAL's pages into the file.
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String()
}

// connRole is what a connection is for: its pragmas differ.
type connRole int

const (
	connWriter connRole = iota
	connReader
	connCheckpointer
)

func openPool(ctx context.Context, dsn string, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	return configurePool(ctx, db, conns)
}

// configurePool keeps conns connections open in db, and checks one.
func configurePool(ctx context.Context, db *sql.DB, conns int) (*sql.DB, error) {
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	// Keep connections: each new one re-runs the pragmas and loses the
	// statement cache, and a file database has nothing to go stale.
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// isSQLiteUnique reports whether err is a UNIQUE or PRIMARY KEY constraint
// failure.
func isSQLiteUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isSQLiteDataError reports whether err is SQLite refusing a value as
// data: a constraint (CHECK, NOT NULL, UNIQUE, a trigger's RAISE, a STRICT
// column's type), a type mismatch, or a value too big. The primary result
// code is the extended code's low byte.
func isSQLiteDataError(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
		return true
	}
	return false
}
