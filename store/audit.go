package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/meshguard/meshguard/audit"
)

// AppendAudit stores sealed records in one transaction, after every record
// already stored and in the order given: that order is the hash chain's.
// All are stored or, on error, none.
func (s *SQLite) AppendAudit(ctx context.Context, rs []audit.Record) error {
	if len(rs) == 0 {
		return nil
	}
	rows := make([][]byte, len(rs))
	for i := range rs {
		r := &rs[i]
		if r.ID == "" || r.Hash == "" || r.PrevHash == "" || (r.Decision != "allow" && r.Decision != "deny") {
			return fmt.Errorf("append audit: record %d is not a sealed record (id, decision and hashes are required)", i)
		}
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("append audit: encoding record %s: %w", r.ID, err)
		}
		rows[i] = b
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO audit (id, ts, agent_id, action, decision, trace_id, record, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i := range rs {
			r := &rs[i]
			if _, err := ins.ExecContext(ctx, r.ID, r.Timestamp.UnixMicro(), r.AgentID, r.Action, r.Decision, r.TraceID,
				string(rows[i]), r.PrevHash, r.Hash); err != nil {
				return fmt.Errorf("audit record %s: %w", r.ID, conflictOr(err))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
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
		var id, raw, prev, hash string
		if err := rows.Scan(&id, &raw, &prev, &hash); err != nil {
			return fmt.Errorf("scan audit: %w", err)
		}
		var r audit.Record
		if json.Unmarshal([]byte(raw), &r) != nil {
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
