package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrSchemaTooNew is returned when opening a database that a newer MeshGuard
// has migrated past what this binary knows. Running against it could corrupt
// data the newer schema relies on, so the store refuses instead.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary supports")

// migration is one numbered SQL file. Its version is its position: files are
// named NNNN_name.sql and numbered 1, 2, 3, … without gaps, so a missing file
// is caught at start-up rather than silently skipped.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the migrations of one dialect from dir in fsys.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() {
			return nil, fmt.Errorf("load migrations: %s: unexpected directory", path.Join(dir, e.Name()))
		}
		version, name, err := parseMigrationName(e.Name())
		if err != nil {
			return nil, fmt.Errorf("load migrations: %s: %w", path.Join(dir, e.Name()), err)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		if strings.TrimSpace(string(body)) == "" {
			return nil, fmt.Errorf("load migrations: %s: empty", path.Join(dir, e.Name()))
		}
		ms = append(ms, migration{version: version, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("load migrations: %s: expected version %04d next, found %04d_%s (versions must run 1, 2, 3, … without gaps or repeats)", dir, i+1, m.version, m.name)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("load migrations: %s: no migrations", dir)
	}
	return ms, nil
}

// parseMigrationName splits "0001_agents_keys.sql" into 1 and "agents_keys".
func parseMigrationName(file string) (int, string, error) {
	base, ok := strings.CutSuffix(file, ".sql")
	if !ok {
		return 0, "", errors.New("expected a .sql file")
	}
	num, name, ok := strings.Cut(base, "_")
	if !ok || len(num) != 4 || name == "" {
		return 0, "", errors.New("expected a name like 0001_description.sql")
	}
	version, err := strconv.Atoi(num)
	if err != nil || version < 1 || strings.ContainsAny(num, "+-") {
		return 0, "", fmt.Errorf("version %q: expected four digits from 0001", num)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return 0, "", fmt.Errorf("description %q: expected lower-case letters, digits and '_'", name)
		}
	}
	return version, name, nil
}

// migrator applies migrations through database/sql, which is how both
// backends can share it: PostgreSQL through pgx/v5/stdlib.
type migrator struct {
	// ddl creates schema_migrations (version, name, applied_at) if missing.
	ddl string
	// lock runs first in each migration's transaction so that two processes
	// starting together apply each migration once. Empty for SQLite, whose
	// writer begins every transaction with BEGIN IMMEDIATE and so already
	// holds the database's write lock; PostgreSQL will use LOCK TABLE.
	lock       string
	migrations []migration
	now        func() time.Time
}

// run brings db up to the newest migration, one transaction per migration so
// a failure leaves the database at the last version that fully applied.
func (m migrator) run(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, m.ddl); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	current, err := m.check(ctx, db)
	if err != nil {
		return err
	}
	for _, mg := range m.migrations[current:] {
		if err := m.apply(ctx, db, mg); err != nil {
			return err
		}
	}
	return nil
}

// queryer is what check needs from a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// check returns the database's schema version after making sure every
// applied migration is one this binary knows under the same name: a database
// from a diverging build is refused rather than patched blindly.
func (m migrator) check(ctx context.Context, q queryer) (int, error) {
	rows, err := q.QueryContext(ctx, `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return 0, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	defer rows.Close()
	current := 0
	for rows.Next() {
		var (
			version int
			name    string
		)
		if err := rows.Scan(&version, &name); err != nil {
			return 0, fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		if version > len(m.migrations) {
			return 0, fmt.Errorf("migrate: %w: the database is at version %d, this binary knows versions up to %d; run the newer meshguard that migrated it, or restore a backup taken before the upgrade",
				ErrSchemaTooNew, version, len(m.migrations))
		}
		if version != current+1 {
			return 0, fmt.Errorf("migrate: schema_migrations: version %d follows %d; the table was edited by hand", version, current)
		}
		if want := m.migrations[version-1].name; name != want {
			return 0, fmt.Errorf("migrate: schema_migrations: version %d is %q in the database but %q in this binary; the database comes from a different build", version, name, want)
		}
		current = version
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	return current, nil
}

func (m migrator) apply(ctx context.Context, db *sql.DB, mg migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %04d_%s: begin: %w", mg.version, mg.name, err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	if m.lock != "" {
		if _, err := tx.ExecContext(ctx, m.lock); err != nil {
			return fmt.Errorf("migrate %04d_%s: lock: %w", mg.version, mg.name, err)
		}
	}
	// Look again under the lock: another process may have applied it since.
	current, err := m.check(ctx, tx)
	if err != nil {
		return err
	}
	if current >= mg.version {
		return nil
	}
	if _, err := tx.ExecContext(ctx, mg.sql); err != nil {
		return fmt.Errorf("migrate %04d_%s: %w", mg.version, mg.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		mg.version, mg.name, toMicros(m.now())); err != nil {
		return fmt.Errorf("migrate %04d_%s: record: %w", mg.version, mg.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %04d_%s: commit: %w", mg.version, mg.name, err)
	}
	return nil
}
