package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/meshguard/meshguard/audit"
)

// auditRowsPerInsert bounds one INSERT statement: 12 parameters a row stay
// well under SQLite's 32766-parameter limit.
const auditRowsPerInsert = 256

// auditCols is the number of columns AppendAudit writes a row.
const auditCols = 12

// AppendAudit stores sealed records in one transaction, after every record
// already stored and in the order given: that order is the hash chain's.
// All are stored or, on error, none. The stored record is its canonical
// encoding, the bytes its hash covers.
func (s *SQLite) AppendAudit(ctx context.Context, rs []audit.Record) error {
	if len(rs) == 0 {
		return nil
	}
	args := make([]any, 0, auditCols*min(len(rs), auditRowsPerInsert))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(rs); start += auditRowsPerInsert {
			batch := rs[start:min(start+auditRowsPerInsert, len(rs))]
			args = args[:0]
			for i := range batch {
				r := &batch[i]
				if r.ID == "" || r.Hash == "" || r.PrevHash == "" || (r.Decision != "allow" && r.Decision != "deny") {
					return fmt.Errorf("record %d is not a sealed record (id, decision and hashes are required)", start+i)
				}
				body, err := r.Canonical()
				if err != nil {
					return err
				}
				args = append(args, r.ID, r.Timestamp.UnixMicro(), r.AgentID, r.Action, r.Decision, r.TraceID,
					r.Status, r.Reason, r.Source, string(body), r.PrevHash, r.Hash)
			}
			if _, err := tx.ExecContext(ctx, insertAuditSQL(len(batch)), args...); err != nil {
				return fmt.Errorf("records %s…%s: %w", batch[0].ID, batch[len(batch)-1].ID, conflictOr(err))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// insertAuditSQL is a multi-row INSERT for n records; one statement a
// batch is several times cheaper than a prepared statement run n times.
// Its parameters are anonymous (?): modernc.org/sqlite looks each numbered
// or named parameter up by a linear scan, which made a 256-row statement
// quadratic (the audit writer spent 60% of its time there).
func insertAuditSQL(n int) string {
	const row = "(?,?,?,?,?,?,?,?,?,?,?,?)"
	var b strings.Builder
	b.Grow(140 + n*(len(row)+1))
	b.WriteString("INSERT INTO audit (id, ts, agent_id, action, decision, trace_id, status, reason, source, record, prev_hash, hash) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

// LastAuditHash returns the hash of the last stored record, or, when there
// is none, the retention anchor's (audit.GenesisHash on a new trail):
// where the next record links to.
func (s *SQLite) LastAuditHash(ctx context.Context) (string, error) {
	var h string
	err := s.r.QueryRowContext(ctx, `SELECT hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&h)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return s.AuditAnchor(ctx)
	case err != nil:
		return "", fmt.Errorf("last audit hash: %w", err)
	}
	return h, nil
}

// ScanAudit calls fn for every stored record in chain order, stopping at
// the first error fn returns. A row whose JSON does not decode is handed
// to fn as a record with only its ID and hashes, so a verifier reports it
// rather than the scan failing.
func (s *SQLite) ScanAudit(ctx context.Context, fn func(audit.Record) error) error {
	return s.ScanAuditFiltered(ctx, AuditFilter{}, func(r audit.Record, _ string) error { return fn(r) })
}
