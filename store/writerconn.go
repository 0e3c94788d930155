package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
)

// sqliteConn is what database/sql uses of a modernc.org/sqlite connection,
// all a writerConn passes on.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// writerConn is a connection of SQLite's writer pool that tells its owner
// before it closes. The audit INSERTs are driver statements prepared on it
// (auditinsert.go), which database/sql does not know of and so does not
// close with it; once the connection is closed they cannot be finalized,
// and SQLite keeps a connection with statements left open alive, with its
// memory and its file, until they are.
type writerConn struct {
	sqliteConn
	closing func(dc any) error
}

// Close runs the closing hook (finalizing what was prepared on c), then
// closes the connection.
func (c *writerConn) Close() error {
	return errors.Join(c.closing(c), c.sqliteConn.Close())
}

// writerConnector opens writerConns with the driver database/sql knows as
// "sqlite", so the pool behaves as one sql.Open would give.
type writerConnector struct {
	drv     driver.Driver
	dsn     string
	closing func(dc any) error
}

func (c *writerConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dc, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(sqliteConn)
	if !ok {
		return nil, errors.Join(fmt.Errorf("sqlite driver connection %T lacks a method database/sql uses", dc), dc.Close())
	}
	return &writerConn{sqliteConn: sc, closing: c.closing}, nil
}

func (c *writerConnector) Driver() driver.Driver { return c.drv }

// openWriterPool is openPool for the writer: one connection, which calls
// closing with itself (the value sql.Conn.Raw hands out) before it closes.
func openWriterPool(ctx context.Context, dsn string, closing func(dc any) error) (*sql.DB, error) {
	// sql.Open connects nothing: it only finds the registered driver.
	probe, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	drv := probe.Driver()
	if err := probe.Close(); err != nil {
		return nil, err
	}
	return configurePool(ctx, sql.OpenDB(&writerConnector{drv: drv, dsn: dsn, closing: closing}), 1)
}
