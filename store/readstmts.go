package store

import (
	"context"
	"database/sql"
	"sync"
)

// maxReadStmts bounds the audit reads kept prepared: a page's text varies
// with its filter and limit, so texts past this many run unprepared.
const maxReadStmts = 64

// readStmts keeps SQLite's audit reads prepared by their text. The
// driver prepares a statement at every query otherwise, and for a record
// read by id parsing and planning its select (three correlated lookups)
// took longer than running it: ≈ 85 of 135 µs. PostgreSQL's driver keeps
// its own cache per connection, so there it is off (nil).
type readStmts struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newReadStmts() *readStmts { return &readStmts{m: make(map[string]*sql.Stmt)} }

// query runs q on pool, through its prepared statement when c is on.
func (c *readStmts) query(ctx context.Context, pool *sql.DB, q string, args []any) (*sql.Rows, error) {
	if c == nil {
		return pool.QueryContext(ctx, q, args...)
	}
	c.mu.Lock()
	st, ok := c.m[q]
	if !ok && len(c.m) < maxReadStmts {
		// Prepared under the lock: two first readers of a text would
		// otherwise both prepare it and one statement would leak.
		var err error
		if st, err = pool.PrepareContext(ctx, q); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.m[q] = st
	}
	c.mu.Unlock()
	if st == nil {
		return pool.QueryContext(ctx, q, args...)
	}
	return st.QueryContext(ctx, args...)
}

// close closes every statement kept.
func (c *readStmts) close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for q, st := range c.m {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.m, q)
	}
	return first
}
