package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// db is the implementation SQLite and Postgres share: every exported method
// of the store is defined once, here and in the files beside this one, on
// *db, and both backends embed it. What differs between the engines is
// opening, migrating and the few dialect bits below.
type db struct {
	// w takes writes, r reads. For SQLite they are separate pools (one
	// writer connection, several readers); for PostgreSQL the same pool.
	w, r    *sql.DB
	now     func() time.Time
	dialect dialect

	// Prepared once: on the lookups the request path makes, parsing the
	// SQL every time cost as much as running it.
	getAgent, getAgentByName, agentByHost, agentBySPIFFEID *sql.Stmt
	// inserts are the audit INSERTs, one per chunk size.
	inserts auditInserts
	// reads keeps the audit reads prepared (SQLite; nil on PostgreSQL).
	reads *readStmts
	// writerReads are the audit writer's selects, prepared on the writer's
	// pool (SQLite; nil on PostgreSQL, whose driver keeps its own
	// statements): with AUDIT_FLUSH_MS=0 a decision paid for parsing them.
	writerReads writerReads
	// auditCommitted, if set, is told how many audit records each
	// AppendAudit committed (SQLite's WAL checkpointer).
	auditCommitted func(n int)

	// maxRevoked bounds the live token revocations
	// (identity.MaxRevokedTokens if zero; tests set less).
	maxRevoked int

	// agentNames keeps the audit_agents dictionary's entries bounded
	// answers have read (auditanswer.go).
	agentNames agentNames

	closeOnce sync.Once
	closeErr  error
}

// dialect is what the shared code must be told about its engine.
type dialect struct {
	// name is "sqlite" or "postgres", for messages.
	name string
	// tagClause is ListAgents' tag test; $tag is replaced by the
	// argument's placeholder.
	tagClause string
	// writeLock, if set, runs first in every write transaction except
	// audit appends, serializing writers as SQLite's single writer
	// connection does: read-check-write transactions (a name is free,
	// retire the current key) then stay correct under READ COMMITTED.
	writeLock string
	// auditChain, if set, is the hash chain this handle appends audit
	// records to; several replicas on one database each have their own.
	// Empty for SQLite's single chain.
	auditChain string
	// skipLocked ends a claiming subquery: rows another replica has locked
	// are passed over (PostgreSQL); SQLite has one writer and needs none.
	skipLocked string
	// compactCols says the audit table keeps ids, trace ids, decisions and
	// sources in their compact forms (auditcols.go).
	compactCols bool
	// taggedCols says they are kept as PostgreSQL's tagged bytea and
	// smallint (auditcols.go, migration postgres/0018).
	taggedCols bool
}

// prepare prepares the request path's statements on the read pool, and
// the audit INSERTs.
func (s *db) prepare(ctx context.Context) error {
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.getAgent, getAgentSQL},
		{&s.getAgentByName, getAgentByNameSQL},
		{&s.agentByHost, agentByHostSQL},
		{&s.agentBySPIFFEID, agentBySPIFFEIDSQL},
	} {
		var err error
		// The statements live as long as s; Close closes them.
		if *p.stmt, err = s.r.PrepareContext(ctx, p.query); err != nil { //nolint:sqlclosecheck
			return fmt.Errorf("prepare: %w", err)
		}
	}
	if err := s.prepareWriterReads(ctx); err != nil {
		return err
	}
	return s.prepareAuditInserts(ctx)
}

// Close closes the database. It is safe to call more than once.
func (s *db) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, st := range append([]*sql.Stmt{s.getAgent, s.getAgentByName, s.agentByHost, s.agentBySPIFFEID}, s.writerReads.all()...) {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
		errs = append(errs, s.closeAuditInserts(), s.reads.close())
		if s.r != nil && s.r != s.w {
			errs = append(errs, s.r.Close())
		}
		if s.w != nil {
			errs = append(errs, s.w.Close())
		}
		if s.closeErr = errors.Join(errs...); s.closeErr != nil {
			s.closeErr = fmt.Errorf("close %s: %w", s.dialect.name, s.closeErr)
		}
	})
	return s.closeErr
}

// inTx runs fn in a write transaction, committing if fn returns nil.
func (s *db) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.tx(ctx, s.dialect.writeLock, fn)
}

// tx runs fn in a transaction that first runs lock (if not empty).
func (s *db) tx(ctx context.Context, lock string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	if lock != "" {
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure, from either engine. Callers check for conflicts first
// and turn them into specific messages; this catches what slips between
// check and write.
func isUniqueViolation(err error) bool {
	return isSQLiteUnique(err) || isPostgresUnique(err)
}

// isDataError reports whether err is the store refusing a value as data
// (by SQLSTATE class or SQLite result code, never by message text), as
// opposed to a store that is down or busy.
func isDataError(err error) bool {
	return isPostgresDataError(err) || isSQLiteDataError(err)
}
