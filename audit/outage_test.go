package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver, for the test's own connections
	_ "modernc.org/sqlite"             // the sqlite driver, for the test's own connections

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// outageStore is a real store plus what the test needs to read it back.
type outageStore interface {
	audit.Store
	audit.Chains
}

// writeThroughOutage writes records from several goroutines while the
// store refuses or holds writes (between down and up), and checks what
// docs/audit.md promises: Write refuses once the store cannot keep up, so every
// decision given has its record queued; the writer recovers on its own
// once the store accepts writes; and every record Write accepted is stored,
// in one verified chain, while no refused one is.
func writeThroughOutage(t *testing.T, s outageStore, down, up func()) {
	t.Helper()
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{
		FlushInterval: 5 * time.Millisecond, MaxLag: 100 * time.Millisecond, WriteTimeout: time.Minute,
		RetryBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Close(ctx)
	})

	var mu sync.Mutex
	accepted, refused := map[string]bool{}, map[string]bool{}
	write := func(ctx context.Context, id string) error {
		r := record(0)
		r.ID = id
		err := w.Write(ctx, r)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			accepted[id] = true
		case errors.Is(err, audit.ErrUnavailable), ctx.Err() != nil:
			refused[id] = true // not given: a full queue held it until the test gave up
		default:
			t.Errorf("write %s: %v", id, err)
		}
		return err
	}
	for i := range 20 {
		if err := write(context.Background(), fmt.Sprintf("aud_before_%d", i)); err != nil {
			t.Fatalf("before the outage: %v", err)
		}
	}

	down()
	// Decisions go on arriving; within a bounded time they are refused.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var refusedErr error
	var once sync.Once
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if err := write(ctx, fmt.Sprintf("aud_during_%d_%d", g, i)); errors.Is(err, audit.ErrUnavailable) {
					once.Do(func() { refusedErr = err })
					cancel()
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
	wg.Wait()
	errDuring := w.Err()
	up() // before any Fatal: Close would wait for the store forever
	if refusedErr == nil {
		t.Fatal("the store refused or held every write for 20 s, and decisions were still given (Write never refused)")
	}
	t.Logf("refused while the store is failing: %v", refusedErr)
	if !errors.Is(errDuring, audit.ErrUnavailable) {
		t.Fatalf("Err during the outage: %v, want ErrUnavailable (/ready reports it)", errDuring)
	}
	// Recovery needs no restart: the writer retries in the background.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := write(context.Background(), fmt.Sprintf("aud_after_%d", time.Now().UnixNano()))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store is back but Write still refuses: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	stored := map[string]bool{}
	if _, err := audit.VerifyChains(context.Background(), s); err != nil {
		t.Fatalf("the chain after the outage: %v", err)
	}
	heads, err := s.AuditChains(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range heads {
		if err := s.ScanAuditChainAfter(context.Background(), h.ID, 0, func(_ int64, r audit.Record) error { stored[r.ID] = true; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for id := range accepted {
		if !stored[id] {
			t.Errorf("record %s was accepted (its decision given) but is not stored", id)
		}
	}
	for id := range refused {
		if stored[id] {
			t.Errorf("record %s was refused but is stored", id)
		}
	}
	if len(stored) != len(accepted) {
		t.Errorf("%d records stored, %d accepted", len(stored), len(accepted))
	}
	t.Logf("%d accepted, %d refused", len(accepted), len(refused))
}

// TestWriterFailsClosedWhileSQLiteIsLocked: another process holds
// SQLite's write lock (a backup, a stuck migration). The writer's
// transaction waits for it (busy_timeout, a minute here) without failing;
// before the fix, every decision meanwhile was given and queued, and a
// crash lost them all.
func TestWriterFailsClosedWhileSQLiteIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := store.OpenSQLite(context.Background(), path, store.WithBusyTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	locker, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	conn, err := locker.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	writeThroughOutage(t, s, func() {
		if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if _, err := conn.ExecContext(context.Background(), "COMMIT"); err != nil {
			t.Fatal(err)
		}
	})
}

// pgRole creates a login role that owns nothing, grants it what MeshGuard
// needs on a migrated database, and returns the URL that logs in as it
// and an admin connection.
func pgRole(t *testing.T) (asRole string, admin *sql.DB) {
	t.Helper()
	u := pgtest.NewDatabase(t)
	// Migrate as the owner.
	s, err := store.OpenPostgres(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	admin, err = sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	role := fmt.Sprintf("mg_writer_%d", time.Now().UnixNano())
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT USAGE, CREATE ON SCHEMA public TO ` + role,
		`GRANT ALL ON ALL TABLES IN SCHEMA public TO ` + role,
		`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ` + role,
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// Roles outlive databases: revoke what it holds here, then drop it
		// (before pgtest drops the database, as cleanups run last first).
		_, _ = admin.Exec(`DROP OWNED BY ` + role)
		_, _ = admin.Exec(`DROP ROLE ` + role)
	})
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.User = url.User(role)
	return pu.String(), admin
}

// TestWriterFailsClosedWhilePostgresRefusesInserts: the role MeshGuard
// logs in as loses its INSERT privilege on the audit table (a mistaken
// GRANT script); every write fails. Decisions are refused until the
// privilege is back, then given again without a restart.
func TestWriterFailsClosedWhilePostgresRefusesInserts(t *testing.T) {
	u, admin := pgRole(t)
	s, err := store.OpenPostgres(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	role := mustUser(t, u)
	writeThroughOutage(t, s, func() {
		if _, err := admin.Exec(`REVOKE INSERT ON audit FROM ` + role); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if _, err := admin.Exec(`GRANT INSERT ON audit TO ` + role); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWriterFailsClosedWhilePostgresTableIsLocked: a migration or a manual
// LOCK TABLE holds the audit table; inserts wait without failing.
func TestWriterFailsClosedWhilePostgresTableIsLocked(t *testing.T) {
	u := pgtest.NewDatabase(t)
	s, err := store.OpenPostgres(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	locker, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	var tx *sql.Tx
	writeThroughOutage(t, s, func() {
		var err error
		if tx, err = locker.Begin(); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`LOCK TABLE audit IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	})
}

func mustUser(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.User.Username()
}
