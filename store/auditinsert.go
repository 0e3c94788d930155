package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
)

// auditInserts are the audit INSERT statements, one per chunk size: a
// batch of any length is cut into chunks of auditRowsPerInsert rows and
// then powers of two (auditChunk), so nine statements cover every batch.
// Preparing a statement for each batch's own row count cost the audited
// Check ≈ 9% of its CPU: the writer's batches vary with the load.
type auditInserts struct {
	// sql is each chunk's statement text, by log2 of its row count.
	sql [auditChunkSizes]string
	// stmt is each one prepared on SQLite's writer connection; nil on
	// PostgreSQL, whose driver caches the prepared statement per
	// connection by its text (nine texts instead of up to 256 keep that
	// cache from churning).
	stmt [auditChunkSizes]*sql.Stmt
}

// auditChunkSizes is how many chunk sizes there are: 1, 2, 4 … 256.
const auditChunkSizes = 9

// A chunk size must be a power of two up to auditRowsPerInsert.
var _ [1]struct{} = [1 << (auditChunkSizes - 1) / auditRowsPerInsert]struct{}{}

// auditChunk is how many of n rows the next INSERT takes: all it can up to
// auditRowsPerInsert, else the largest power of two not above n.
func auditChunk(n int) int {
	if n >= auditRowsPerInsert {
		return auditRowsPerInsert
	}
	return 1 << (bits.Len(uint(n)) - 1)
}

// prepareAuditInserts builds the statements' texts and, on SQLite,
// prepares them on the writer connection (which must be idle: it is the
// pool's only one).
func (s *db) prepareAuditInserts(ctx context.Context) error {
	for i := range auditChunkSizes {
		s.inserts.sql[i] = s.insertAuditSQL(1 << i)
		if s.dialect.name != "sqlite" {
			continue
		}
		var err error
		// They live as long as s; Close closes them.
		if s.inserts.stmt[i], err = s.w.PrepareContext(ctx, s.inserts.sql[i]); err != nil { //nolint:sqlclosecheck
			return fmt.Errorf("prepare audit insert of %d rows: %w", 1<<i, err)
		}
	}
	return nil
}

// execAuditInsert runs the INSERT of n rows (a chunk size) with args in tx.
func (s *db) execAuditInsert(ctx context.Context, tx *sql.Tx, n int, args []any) error {
	i := bits.TrailingZeros(uint(n))
	if n != 1<<i || i >= auditChunkSizes {
		return fmt.Errorf("audit insert of %d rows: not a chunk size", n)
	}
	if st := s.inserts.stmt[i]; st != nil {
		// The transaction runs on the connection the statement was
		// prepared on, so database/sql reuses it rather than preparing.
		ts := tx.StmtContext(ctx, st)
		_, err := ts.ExecContext(ctx, args...)
		return errors.Join(err, ts.Close())
	}
	_, err := tx.ExecContext(ctx, s.inserts.sql[i], args...)
	return err
}

// closeAuditInserts closes the prepared statements.
func (s *db) closeAuditInserts() error {
	var errs []error
	for _, st := range s.inserts.stmt {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
