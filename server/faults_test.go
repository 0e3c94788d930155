package server

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestStoreConnectionsKilledUnderLoad: while Checks run, PostgreSQL
// terminates every connection MeshGuard holds, three times. Each Check
// either gets a decision or fails closed with a gRPC error (never an
// allow without a record); once the connections come back, writing
// resumes; and after shutdown the trail holds exactly one verified record
// per decision given.
func TestStoreConnectionsKilledUnderLoad(t *testing.T) {
	u := pgtest.NewDatabase(t)
	r := start(t, func(c *config.Config) { c.DatabaseURL = u })
	token := r.agent(t, "reader", "reader")

	killer, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = killer.Close() })
	kill := func() int64 {
		var n int64
		if err := killer.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Error(err)
		}
		return n
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req := checkRequest(token, "GET", "/docs/1")
	authz := authv3.NewAuthorizationClient(r.grpc)
	var given, failed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := authz.Check(context.Background(), req)
				switch {
				case err == nil && codes.Code(resp.GetStatus().GetCode()) == codes.OK:
					given.Add(1)
				case err == nil:
					t.Errorf("a readable document was denied: %v", resp)
					return
				case status.Code(err) == codes.Unavailable || status.Code(err) == codes.Internal:
					failed.Add(1) // fail closed: Envoy denies
				default:
					t.Errorf("check: %v", err)
					return
				}
			}
		})
	}
	var killed int64
	for range 3 {
		time.Sleep(600 * time.Millisecond)
		killed += kill()
	}
	wg.Wait()
	if killed == 0 {
		t.Fatal("no connection was terminated")
	}
	// After the outage, decisions are given again.
	eventually(t, "a decision after the outage", func() bool {
		resp, err := authz.Check(context.Background(), req)
		if err == nil && codes.Code(resp.GetStatus().GetCode()) == codes.OK {
			given.Add(1)
			return true
		}
		return false
	})
	r.stop(t)
	t.Logf("%d decisions given, %d refused (fail closed), %d connections terminated", given.Load(), failed.Load(), killed)

	s, err := store.OpenPostgres(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	n, err := audit.VerifyChains(context.Background(), s)
	if err != nil {
		t.Fatalf("trail after the outage: %v", err)
	}
	if n != given.Load() {
		t.Fatalf("%d records stored, %d decisions given", n, given.Load())
	}
}

// TestChecksFailClosedWhileTheAuditStoreIsLocked: another process holds
// SQLite's write lock, so the audit writer's transaction waits. Checks are
// refused (UNAVAILABLE, saying the audit store is why) rather than allowed
// with records a crash would lose, and are decided again, without a
// restart, once the lock is gone; every decision given is then stored.
func TestChecksFailClosedWhileTheAuditStoreIsLocked(t *testing.T) {
	r := start(t, func(c *config.Config) { c.AuditMaxLagMs = 100 })
	token := r.agent(t, "reader", "reader")
	// The locker waits for a transaction of the audit writer's under way
	// (it was refused with SQLITE_BUSY when one was).
	locker, err := sql.Open("sqlite", "file:"+filepath.Join(r.cfg.DataDir, "meshguard.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	conn, err := locker.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	authz := authv3.NewAuthorizationClient(r.grpc)
	req := checkRequest(token, "GET", "/docs/1")
	given := 0
	check := func() error {
		resp, err := authz.Check(context.Background(), req)
		if err == nil {
			if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
				t.Fatalf("a readable document was denied: %v", resp)
			}
			given++
		}
		return err
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var refused error
	deadline := time.Now().Add(20 * time.Second)
	for refused == nil && time.Now().Before(deadline) {
		refused = check()
	}
	if _, err := conn.ExecContext(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if refused == nil {
		t.Fatal("checks were allowed for 20 s while the audit store could not store a record")
	}
	if status.Code(refused) != codes.Unavailable || !strings.Contains(status.Convert(refused).Message(), "audit store") {
		t.Fatalf("refusal: %v, want UNAVAILABLE saying the audit store is why", refused)
	}
	eventually(t, "a decision once the lock is gone", func() bool { return check() == nil })
	r.stop(t)

	s, err := store.OpenSQLite(context.Background(), filepath.Join(r.cfg.DataDir, "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	n, err := audit.VerifyChains(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(given) {
		t.Fatalf("%d records stored, %d decisions given", n, given)
	}
}
