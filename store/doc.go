// Package store persists MeshGuard's state: agents (with the hosts they are
// reached under), signing keys and the policies applied through the admin
// API, and later audit records and the alert outbox. No other package sees SQL; they use the small interfaces they
// define themselves (identity.AgentSource, identity.KeyStore, …), which the
// backends here implement.
//
// Today there is one backend, *SQLite: an embedded database file in WAL mode
// (modernc.org/sqlite, pure Go, no cgo), the default for a single replica.
// A PostgreSQL backend (pgx v5) follows for several replicas sharing one
// database, with the same method set. Everything here is written so that it
// can follow without callers noticing:
//
//   - SQL uses $1, $2, … placeholders, which both PostgreSQL and
//     modernc.org/sqlite bind by number, and plain constructs both dialects
//     share (no UPSERT, no rowid, no SQLite date functions). The one clause
//     that must differ, ListAgents' tag test, is passed in by the backend.
//   - Migrations are numbered files per dialect (migrations/sqlite/0001_….sql,
//     later migrations/postgres/0001_….sql) recorded in a schema_migrations
//     table with the same layout in both; the loader and the version checks
//     in migrate.go are dialect-neutral.
//   - Semantics that could differ between engines are fixed here, not left to
//     the engine: times are truncated to microseconds and returned in UTC (what
//     timestamptz keeps), names compare and sort byte-wise (PostgreSQL must use
//     COLLATE "C"), empty tags/hosts/metadata come back as empty, non-nil
//     values, and errors callers branch on are identity's sentinels
//     (identity.ErrNotFound, ErrConflict, ErrInvalidAgent), never driver codes.
//
// The conformance suite in store/storetest pins that contract down; every
// backend must pass it.
package store
