package store

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		fs      fstest.MapFS
		want    []string // version_name, in order
		wantErr string
	}{
		{"in order", fstest.MapFS{"m/0002_b.sql": file("B"), "m/0001_a.sql": file("A")}, []string{"1_a", "2_b"}, ""},
		{"gap", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")}, nil, "expected version 0002"},
		{"repeat", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0001_b.sql": file("B")}, nil, "expected version 0002"},
		{"starts at 2", fstest.MapFS{"m/0002_b.sql": file("B")}, nil, "expected version 0001"},
		{"zero", fstest.MapFS{"m/0000_z.sql": file("Z")}, nil, "four digits from 0001"},
		{"short number", fstest.MapFS{"m/1_a.sql": file("A")}, nil, "0001_description"},
		{"not sql", fstest.MapFS{"m/0001_a.txt": file("A")}, nil, ".sql"},
		{"no description", fstest.MapFS{"m/0001_.sql": file("A")}, nil, "0001_description"},
		{"upper-case description", fstest.MapFS{"m/0001_Agents.sql": file("A")}, nil, "lower-case"},
		{"sign", fstest.MapFS{"m/+001_a.sql": file("A")}, nil, "four digits"},
		{"empty file", fstest.MapFS{"m/0001_a.sql": file(" \n")}, nil, "empty"},
		{"subdirectory", fstest.MapFS{"m/0001_a.sql": file("A"), "m/x/0002_b.sql": file("B")}, nil, "unexpected directory"},
		{"none", fstest.MapFS{"other/0001_a.sql": file("A")}, nil, "m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := loadMigrations(tc.fs, "m")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, fmt.Sprintf("%d_%s", m.version, m.name))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	ms, err := loadMigrations(sqliteMigrations, "migrations/sqlite")
	if err != nil || len(ms) == 0 || ms[0].name != "agents_keys" {
		t.Fatalf("embedded migrations: %v, %v", ms, err)
	}
}

type migrationRow struct {
	version   int
	name      string
	appliedAt int64
}

func migrationRows(t *testing.T, db *sql.DB) []migrationRow {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.version, &r.name, &r.appliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := OpenSQLite(t.Context(), path, WithClock(func() time.Time { return first }))
	if err != nil {
		t.Fatal(err)
	}
	before := migrationRows(t, s.w)
	ms, _ := loadMigrations(sqliteMigrations, "migrations/sqlite")
	if len(before) != len(ms) || before[len(before)-1].appliedAt != toMicros(first) {
		t.Fatalf("after the first open schema_migrations = %v, want %d rows applied at %v", before, len(ms), first)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s = openTest(t, path, WithClock(func() time.Time { return first.Add(time.Hour) }))
		after := migrationRows(t, s.w)
		if len(after) != len(before) || after[0] != before[0] {
			t.Fatalf("reopening changed schema_migrations: %v, then %v", before, after)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s := openTest(t, path)
	ms, _ := loadMigrations(sqliteMigrations, "migrations/sqlite")
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', 0)`, len(ms)+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSQLite(t.Context(), path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("OpenSQLite = %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{path, fmt.Sprintf("version %d", len(ms)+1), fmt.Sprintf("up to %d", len(ms))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRefusesForeignSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s := openTest(t, path)
	if _, err := s.w.ExecContext(t.Context(), `UPDATE schema_migrations SET name = 'something_else' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSQLite(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "different build") {
		t.Fatalf("OpenSQLite = %v, want a different-build error", err)
	}
}

// TestFailedMigrationRollsBack: each migration is one transaction, so a
// failure part-way leaves neither its tables nor its schema_migrations row.
func TestFailedMigrationRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := openPool(t.Context(), sqliteDSN(path, time.Second, connWriter), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys := fstest.MapFS{
		"m/0001_one.sql": {Data: []byte(`CREATE TABLE one (x INTEGER);`)},
		"m/0002_two.sql": {Data: []byte(`CREATE TABLE two (x INTEGER); INSERT INTO nowhere VALUES (1);`)},
	}
	ms, err := loadMigrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	m := migrator{ddl: sqliteMigrationsDDL, migrations: ms, now: time.Now}
	if err := m.run(t.Context(), db); err == nil || !strings.Contains(err.Error(), "0002_two") {
		t.Fatalf("run = %v, want an error naming 0002_two", err)
	}
	if rows := migrationRows(t, db); len(rows) != 1 || rows[0].name != "one" {
		t.Fatalf("schema_migrations = %v, want only version 1", rows)
	}
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'two'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("table two exists after a failed migration (%d, %v)", n, err)
	}
	// Fixed, the migration applies on the next run.
	fsys["m/0002_two.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE two (x INTEGER);`)}
	if m.migrations, err = loadMigrations(fsys, "m"); err != nil {
		t.Fatal(err)
	}
	if err := m.run(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	if rows := migrationRows(t, db); len(rows) != 2 {
		t.Fatalf("schema_migrations = %v, want 2 rows", rows)
	}
}
