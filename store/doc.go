// Package store persists MeshGuard's state: agents (with the hosts they are
// reached under and the SPIFFE IDs bound to them), signing keys, the
// policies applied through the admin API, audit records and shared
// rate-limit counts. No other package sees SQL;
// they use the small interfaces they define themselves
// (identity.AgentSource, identity.KeyStore, audit.Store, ratelimit.CountStore,
// …), which the backends here implement.
//
// There are two backends with one implementation. *SQLite is an embedded
// database file in WAL mode (modernc.org/sqlite, pure Go, no cgo), the
// default for a single replica. *Postgres (pgx v5 through database/sql) is
// for several replicas sharing one database. Both embed the unexported db
// type, on which every shared method is defined once; the few differences
// are passed in as a dialect:
//
//   - SQL uses $1, $2, … placeholders, which both PostgreSQL and
//     modernc.org/sqlite bind by number, and plain constructs both dialects
//     share (no UPSERT, no rowid, no SQLite date functions). ListAgents' tag
//     test (json_each here, jsonb ? there) is passed in by the backend.
//   - Migrations are numbered files per dialect (migrations/sqlite/0001_….sql,
//     migrations/postgres/0001_….sql) recorded in a schema_migrations table
//     with the same layout in both; the loader and the version checks in
//     migrate.go are dialect-neutral. PostgreSQL locks schema_migrations in
//     each migration's transaction, so replicas starting together migrate
//     once.
//   - Writers. SQLite has one writer connection. PostgreSQL writes (except
//     audit appends) take one transaction-scoped advisory lock, so the
//     read-check-write transactions (a name is free, one key is current)
//     stay correct under READ COMMITTED, as they are on SQLite.
//   - Semantics that could differ between engines are fixed here, not left to
//     the engine: times are unix microseconds in integer columns, returned in
//     UTC (what timestamptz would keep), names compare and sort byte-wise
//     (PostgreSQL columns use COLLATE "C"), empty tags/hosts/spiffeIds/
//     metadata come back as empty, non-nil values, and errors callers branch on are
//     identity's sentinels (identity.ErrNotFound, ErrConflict,
//     ErrInvalidAgent), never driver codes.
//
// The audit trail across replicas. Each audit.Writer seals records in memory
// after the hash it read at start. A single chain shared by replicas would
// need every batch serialized and re-linked across the network; instead a
// PostgreSQL trail is a set of chains, one per writer. Each Postgres handle
// appends to its own chain (WithAuditChain; by default the host name and a
// random suffix, new for each process), LastAuditHash is that chain's head,
// and audit_chains records every chain's head and length. AppendAudit moves
// the head only from the hash the batch links to, under the head row's lock,
// so two writers given the same chain name fail (identity.ErrConflict)
// instead of forking it, and a chain cut short at its end no longer matches
// its head. audit.VerifyChains walks every chain (AuditChains,
// ScanAuditChain). SQLite keeps its single chain, named "".
//
// Changes to agents, stored services, stored policies and signing keys
// reach other replicas through LISTEN/NOTIFY: a trigger on each table
// announces every change, and Postgres.Watch reports them on one
// connection (see docs/storage.md).
//
// The conformance suite in store/storetest pins that contract down; every
// backend must pass it.
package store
