package store

import (
	"context"
	"database/sql"
	"fmt"
)

// lastAuditHashSQL reads the hash of SQLite's newest audit row
// (linksToLast).
const lastAuditHashSQL = `SELECT hash FROM audit ORDER BY seq DESC LIMIT 1`

// writerReads are the selects the audit writer runs in every append's
// transaction, prepared once on SQLite's writer pool and moved into each
// transaction (sql.Tx.StmtContext reuses what the writer's connection has
// prepared). The driver otherwise parses a statement at every query: with
// AUDIT_FLUSH_MS=0, where each decision is its own append, parsing these
// two took longer than running them (engine.BenchmarkCheckAudited/sync).
// PostgreSQL's driver keeps its own statements per connection, so there
// they stay nil and run by their text.
type writerReads struct {
	lastHash *sql.Stmt
	agentsIn [len(linkChunks)]*sql.Stmt // agentNumbersSQL of each chunk size
}

// prepareWriterReads prepares writerReads on SQLite.
func (s *db) prepareWriterReads(ctx context.Context) error {
	if s.dialect.name != "sqlite" {
		return nil
	}
	var err error
	// The statements live as long as s; Close closes them.
	if s.writerReads.lastHash, err = s.w.PrepareContext(ctx, lastAuditHashSQL); err != nil { //nolint:sqlclosecheck
		return fmt.Errorf("prepare: %w", err)
	}
	for k, n := range linkChunks {
		if s.writerReads.agentsIn[k], err = s.w.PrepareContext(ctx, agentNumbersSQL(n)); err != nil { //nolint:sqlclosecheck
			return fmt.Errorf("prepare: %w", err)
		}
	}
	return nil
}

// all are the statements prepared, for Close.
func (w *writerReads) all() []*sql.Stmt {
	var out []*sql.Stmt
	for _, st := range append([]*sql.Stmt{w.lastHash}, w.agentsIn[:]...) {
		if st != nil {
			out = append(out, st)
		}
	}
	return out
}
