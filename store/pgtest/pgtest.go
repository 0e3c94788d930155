// Package pgtest gives tests their own PostgreSQL database.
//
// The server to use is MESHGUARD_TEST_DATABASE_URL (`make test` starts a
// throwaway one with scripts/postgres.sh). Without it, tests that need
// PostgreSQL skip, unless MESHGUARD_REQUIRE_POSTGRES is true (1, set by
// `make test`), when they fail: CI must never pass by skipping them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables.
const (
	EnvURL = "MESHGUARD_TEST_DATABASE_URL"
	// EnvRequire, when true, makes a missing EnvURL a failure, not a skip.
	EnvRequire = "MESHGUARD_REQUIRE_POSTGRES"
)

// required reads a MESHGUARD_REQUIRE_* switch, by the rule every one of
// them follows (telemetry/jaegertest has the same): unset or empty is
// false; otherwise a boolean as strconv.ParseBool reads it (1, true, 0,
// false, …). Any other value is an error, never a quiet "not required":
// a mistyped switch must not let CI pass by skipping.
func required(name, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: expected 1 (required) or 0", name, v)
	}
	return b, nil
}

// NewDatabase creates an empty database for t, drops it when t ends, and
// returns its URL. Each test gets its own, so none sees another's rows.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		req, err := required(EnvRequire, os.Getenv(EnvRequire))
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if req {
			t.Fatalf("%s is not set but %s is: PostgreSQL tests must run", EnvURL, EnvRequire)
		}
		t.Skipf("%s is not set (scripts/postgres.sh start DIR prints one)", EnvURL)
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
