package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
func insertAuditSQL(n int) string {
	var b strings.Builder
	b.Grow(140 + n*6*auditCols)
	b.WriteString("INSERT INTO audit (id, ts, agent_id, action, decision, trace_id, status, reason, source, record, prev_hash, hash) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range auditCols {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(i*auditCols + c + 1))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// LastAuditHash returns the hash of the last stored record, or
// audit.GenesisHash when there is none: where the next record links to.
func (s *SQLite) LastAuditHash(ctx context.Context) (string, error) {
	var h string
	err := s.r.QueryRowContext(ctx, `SELECT hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&h)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return audit.GenesisHash, nil
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
	rows, err := s.r.QueryContext(ctx, `SELECT id, record, prev_hash, hash FROM audit ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("scan audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, prev, hash string
		var raw []byte
		if err := rows.Scan(&id, &raw, &prev, &hash); err != nil {
			return fmt.Errorf("scan audit: %w", err)
		}
		var r audit.Record
		if json.Unmarshal(raw, &r) != nil {
			r = audit.Record{ID: id}
		}
		// The columns are what the chain links; the JSON is what was hashed.
		r.PrevHash, r.Hash = prev, hash
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan audit: %w", err)
	}
	return nil
}
