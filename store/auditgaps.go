package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// RecordAuditGap records records this handle's chain lost (audit.Writer
// found its head older than the last batch it stored). The position is
// the chain's last record's (or its anchor's).
func (s *db) RecordAuditGap(ctx context.Context, g audit.Gap) error {
	chain := s.dialect.auditChain
	err := s.tx(ctx, "", func(tx *sql.Tx) error {
		var after sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit WHERE chain_id = $1`, chain).Scan(&after); err != nil {
			return err
		}
		if !after.Valid {
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(last_seq), 0) FROM audit_anchors WHERE chain_id = $1`, chain).Scan(&after); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_gaps (chain_id, after_seq, after_hash, lost_head, lost, from_ts, to_ts, detected_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, chain, after.Int64, g.AfterHash, g.LostHead, g.Lost,
			g.From.UnixMicro(), g.To.UnixMicro(), g.DetectedAt.UnixMicro())
		return err
	})
	if err != nil {
		return fmt.Errorf("record audit gap: %w", err)
	}
	return nil
}

// AuditGaps lists every gap recorded, oldest first.
func (s *db) AuditGaps(ctx context.Context) ([]audit.Gap, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT chain_id, after_seq, after_hash, lost_head, lost, from_ts, to_ts, detected_at
		FROM audit_gaps ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("audit gaps: %w", err)
	}
	defer rows.Close()
	out := []audit.Gap{}
	for rows.Next() {
		var g audit.Gap
		var from, to, at int64
		if err := rows.Scan(&g.Chain, &g.AfterSeq, &g.AfterHash, &g.LostHead, &g.Lost, &from, &to, &at); err != nil {
			return nil, fmt.Errorf("audit gaps: %w", err)
		}
		g.From, g.To, g.DetectedAt = time.UnixMicro(from).UTC(), time.UnixMicro(to).UTC(), time.UnixMicro(at).UTC()
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit gaps: %w", err)
	}
	return out, nil
}

// AuditHashByID is the hash of the stored record with this id, and false
// if there is none.
func (s *db) AuditHashByID(ctx context.Context, id string) (string, bool, error) {
	var h []byte
	err := s.r.QueryRowContext(ctx, `SELECT hash FROM audit WHERE id = $1`, s.dialect.idArg(id)).Scan(&h)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("audit record %s: %w", id, err)
	}
	return hashText(h), true, nil
}

// AuditRecord is the stored record with this id, and false if there is
// none (the console's decision page). A row that does not decode, or whose
// columns disagree with its record, comes back marked Unreadable.
func (s *db) AuditRecord(ctx context.Context, id string) (audit.Record, bool, error) {
	var out audit.Record
	found := false
	err := s.readAuditAnswer(ctx, `SELECT `+s.auditAnswerSelect()+` FROM audit WHERE id = $1`, []any{s.dialect.idArg(id)}, false, func(_ int64, r audit.Record) error {
		out, found = r, true
		return nil
	})
	if err != nil {
		return audit.Record{}, false, fmt.Errorf("audit record %s: %w", id, err)
	}
	return out, found, nil
}
