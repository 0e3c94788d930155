package server

import (
	"context"
	"database/sql"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// compiles counts the policy-set compiles the server logged, and the
// policies in the last one.
func compiles(logs *logEvents) (n, last int) {
	logs.store.mu.Lock()
	defer logs.store.mu.Unlock()
	for _, l := range logs.store.lines {
		switch {
		case strings.HasPrefix(l.msg, "policies loaded"), strings.HasPrefix(l.msg, "policies reloaded"):
			n++
			last, _ = strconv.Atoi(l.attrs["policies"])
		case strings.HasPrefix(l.msg, "policies did not load"), strings.HasPrefix(l.msg, "policy reload failed"),
			strings.HasPrefix(l.msg, "policy reload after a change"):
			n++
		}
	}
	return n, last
}

// sqlDB is a plain connection to url, for what the store offers no call
// for (pg_stat_activity).
func sqlDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// listeners counts the connections to the test's database listening on
// the change feeds: idle after their LISTENs (one query).
func listeners(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle' AND query LIKE 'LISTEN %'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStartOnPostgresCompilesOnce: on PostgreSQL too a start compiles the
// policy set once. The change feed listens before build reads the stored
// policies, so its first round has nothing to reload; before, it reloaded
// everything once it listened (after Ready), a second compile of the set.
// The event that says that first round is over: a policy stored after the
// feed listens (another replica's) is notified after it, and its reload is
// logged after any reload that round made (one goroutine runs them in
// turn). So the start's compile and that one are all there are.
func TestStartOnPostgresCompilesOnce(t *testing.T) {
	u := pgtest.NewDatabase(t)
	logs := newLogEvents()
	runWith(t, configWith(t, func(c *config.Config) { c.DatabaseURL = u }), Options{Logger: slog.New(logs)})
	n, base := compiles(logs)
	if n != 1 {
		t.Fatalf("the policy set was compiled %d times before Ready, want once", n)
	}
	raw := sqlDB(t, u)
	waitFor(t, "the change feed listening", func() bool { return listeners(t, raw) == 1 })

	other, err := store.OpenPostgres(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	mark := logs.mark()
	if _, err := other.PutPolicy(t.Context(), "later", "name: later\n"); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, mark, "the reload of the policy stored", func(l logLine) bool {
		return strings.HasPrefix(l.msg, "policies reloaded") && l.attrs["policies"] == strconv.Itoa(base+1)
	})
	if n, _ := compiles(logs); n != 2 {
		t.Errorf("the policy set was compiled %d times (the start's, the change feed's first round's and the stored policy's), want 2: the start's and the stored policy's", n)
	}
}

// startBetween starts the server as Run does, calling between after build
// read the store and before serve: a change made there is made while the
// replica starts.
func startBetween(t *testing.T, cfg *config.Config, between func()) (*running, *parts) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	o := Options{KeyReload: time.Hour, RevokedReload: time.Hour, ShutdownGrace: time.Second}
	log := slog.New(slog.DiscardHandler)
	p, err := build(ctx, cfg, o, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	between()
	ready := make(chan Addrs, 1)
	o.Ready = ready
	go func() {
		defer p.close()
		r.done <- p.serve(ctx, cfg, o, log)
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case r.addrs = <-ready:
	case err := <-r.done:
		t.Fatalf("server did not start: %v", err)
	}
	r.connect(t)
	return r, p
}

// TestChangesDuringStartAreServed: a token revoked and a policy stored by
// another replica while a replica starts — after it read the store, before
// it serves — are in force there once it serves: the feed listened before
// the reads, so what commits after them is notified (the periodic reloads
// are an hour off here).
func TestChangesDuringStartAreServed(t *testing.T) {
	u := pgtest.NewDatabase(t)
	withDB := func(c *config.Config) { c.DatabaseURL = u }
	a := start(t, withDB)
	token := a.agent(t, "reader", "reader")
	b, p := startBetween(t, configWith(t, withDB), func() {
		if _, err := a.admin.RevokeToken(context.Background(), api.RevokeTokenRequest{Token: token}); err != nil {
			t.Fatal(err)
		}
		other, err := store.OpenPostgres(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = other.Close() }()
		if _, err := other.PutPolicy(t.Context(), "during", "name: during\n"); err != nil {
			t.Fatal(err)
		}
	})
	waitFor(t, "the replica refusing the token revoked while it started", func() bool {
		code, reason := denyReason(t, b, token)
		return code == 401 && reason == engine.ReasonTokenRevoked
	})
	waitFor(t, "the replica deciding with the policy stored while it started", func() bool {
		_, ok := p.loader.Current().Policy("during")
		return ok
	})
}

// TestFeedReconnectionReloadsEverything: once the change feed's connection
// breaks, the server reports it, listens again, and reloads what it holds
// (the policy set among them: anything may have changed unseen).
func TestFeedReconnectionReloadsEverything(t *testing.T) {
	u := pgtest.NewDatabase(t)
	logs := newLogEvents()
	runWith(t, configWith(t, func(c *config.Config) { c.DatabaseURL = u }), Options{Logger: slog.New(logs)})
	raw := sqlDB(t, u)
	waitFor(t, "the change feed listening", func() bool { return listeners(t, raw) == 1 })
	mark := logs.mark()
	var killed int
	if err := raw.QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listening connections, want 1", killed)
	}
	logs.wait(t, mark, "the broken feed reported", func(l logLine) bool {
		return strings.HasPrefix(l.msg, "listening for changes made on other replicas failed")
	})
	logs.wait(t, mark, "the policy set reloaded once listening again", func(l logLine) bool {
		return strings.HasPrefix(l.msg, "policies reloaded")
	})
}
