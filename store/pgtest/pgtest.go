// Package pgtest gives tests their own PostgreSQL database.
//
// The server to use is MESHGUARD_TEST_DATABASE_URL (`make test` starts a
// throwaway one with scripts/postgres.sh). Without it, tests that need
// PostgreSQL skip, unless MESHGUARD_REQUIRE_POSTGRES requires them (set by `make test`),
// when they fail: the rule is package testenv's.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meshguard/meshguard/internal/testenv"
)

// Environment variables.
const (
	EnvURL = "MESHGUARD_TEST_DATABASE_URL"
	// EnvRequire, when true, makes a missing EnvURL a failure, not a skip.
	EnvRequire = "MESHGUARD_REQUIRE_POSTGRES"
)

// NewDatabase creates an empty database for t, drops it when t ends, and
// returns its URL. Each test gets its own, so none sees another's rows.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		testenv.Missing(t, EnvRequire, EnvURL+" is not set (scripts/postgres.sh start DIR prints one)")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "mgtest_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", u.Redacted(), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		// FORCE: a test that failed half-way may have left connections.
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
