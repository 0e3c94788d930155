package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/bits"
)

// auditInserts are the audit INSERT statements, one per chunk size: a
// batch of any length is cut into chunks of auditRowsPerInsert rows and
// then powers of two (auditChunk), so nine statements cover every batch.
// Preparing a statement for each batch's own row count cost the audited
// Check ≈ 9% of its CPU: the writer's batches vary with the load.
//
// On SQLite the statements are the driver's own, prepared on the writer
// connection and run through sql.Conn.Raw with one reused argument slice:
// through database/sql a 256-row chunk allocated and checked 3,584
// NamedValues (143 KB) every time. Only the transaction holding the
// writer connection (the pool's only one) touches them.
type auditInserts struct {
	// sql is each chunk's statement text, by log2 of its row count.
	sql [auditChunkSizes]string
	// conn is the SQLite driver connection stmt was prepared on; nil on
	// PostgreSQL, whose driver caches the prepared statement per
	// connection by its text (nine texts instead of up to 256 keep that
	// cache from churning).
	conn any
	stmt [auditChunkSizes]driver.StmtExecContext
	// args is a chunk's arguments, as the driver takes them.
	args []driver.NamedValue
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
	}
	if s.dialect.name != "sqlite" {
		return nil
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("prepare audit inserts: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		for i := range auditChunkSizes {
			if _, err := s.inserts.driverStmt(ctx, dc, i); err != nil {
				return err
			}
		}
		return nil
	})
}

// driverStmt is the INSERT of 1<<i rows prepared on the driver connection
// dc. A new connection (the pool replaced one the driver reported broken)
// gets statements of its own; the old one's were finalized as it closed
// (closing).
func (a *auditInserts) driverStmt(ctx context.Context, dc any, i int) (driver.StmtExecContext, error) {
	if a.conn != dc {
		a.conn, a.stmt = dc, [auditChunkSizes]driver.StmtExecContext{}
	}
	if a.stmt[i] != nil {
		return a.stmt[i], nil
	}
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("prepare audit insert: driver connection %T cannot prepare with a context", dc)
	}
	st, err := pc.PrepareContext(ctx, a.sql[i])
	if err != nil {
		return nil, fmt.Errorf("prepare audit insert of %d rows: %w", 1<<i, err)
	}
	se, ok := st.(driver.StmtExecContext)
	if !ok {
		return nil, errors.Join(fmt.Errorf("prepare audit insert: driver statement %T cannot execute with a context", st), st.Close())
	}
	a.stmt[i] = se
	return se, nil
}

// execAuditInsert runs the INSERT of n rows (a chunk size) with args in
// tx; on SQLite through conn, the connection tx runs on.
func (s *db) execAuditInsert(ctx context.Context, tx *sql.Tx, conn *sql.Conn, n int, args []any) error {
	i := bits.TrailingZeros(uint(n))
	if n != 1<<i || i >= auditChunkSizes {
		return fmt.Errorf("audit insert of %d rows: not a chunk size", n)
	}
	if conn == nil {
		_, err := tx.ExecContext(ctx, s.inserts.sql[i], args...)
		return err
	}
	return conn.Raw(func(dc any) error {
		st, err := s.inserts.driverStmt(ctx, dc, i)
		if err != nil {
			return err
		}
		a := &s.inserts
		for len(a.args) < len(args) {
			// The driver finds argument k at index k-1 when every
			// ordinal is its index plus one.
			a.args = append(a.args, driver.NamedValue{Ordinal: len(a.args) + 1})
		}
		nv := a.args[:len(args)]
		for j, v := range args {
			// What database/sql would do: a value that is not a
			// driver.Value (an int) is converted, or refused.
			if !driver.IsValue(v) {
				if v, err = driver.DefaultParameterConverter.ConvertValue(v); err != nil {
					dropValues(nv)
					return fmt.Errorf("audit insert argument %d: %w", j+1, err)
				}
			}
			nv[j].Value = v
		}
		_, err = st.ExecContext(ctx, nv)
		dropValues(nv) // the driver copied them
		return err
	})
}

// dropValues forgets the values of nv, keeping their ordinals, so the
// reused slice keeps no record alive.
func dropValues(nv []driver.NamedValue) {
	for j := range nv {
		nv[j].Value = nil
	}
}

// closeAuditInserts closes the SQLite driver statements, on the
// connection they were prepared on.
func (s *db) closeAuditInserts() error {
	if s.inserts.conn == nil || s.w == nil {
		return nil
	}
	conn, err := s.w.Conn(context.Background())
	if err != nil {
		return fmt.Errorf("close audit inserts: %w", err)
	}
	defer conn.Close()
	return conn.Raw(s.inserts.closing)
}

// closing finalizes the statements prepared on the driver connection dc,
// which is about to close (writerConn.Close) or to be, and forgets them.
// database/sql runs it holding dc, as it does sql.Conn.Raw's callbacks,
// so it never runs while an INSERT does.
func (a *auditInserts) closing(dc any) error {
	if dc != a.conn {
		return nil
	}
	var errs []error
	for _, st := range a.stmt {
		if c, ok := st.(driver.Stmt); ok {
			errs = append(errs, c.Close())
		}
	}
	a.conn, a.stmt = nil, [auditChunkSizes]driver.StmtExecContext{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close audit inserts: %w", err)
	}
	return nil
}
