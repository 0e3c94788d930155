package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
)

// auditRowsPerInsert bounds one INSERT statement: 10 parameters a row stay
// well under SQLite's 32766-parameter limit (PostgreSQL's is 65535).
const auditRowsPerInsert = 256

// AppendAudit stores sealed records in one transaction, after every record
// already stored and in the order given: that order is the hash chain's.
// All are stored or, on error, none. The stored record is its canonical
// encoding, the bytes its hash covers.
//
// On PostgreSQL the records go to this handle's chain (WithAuditChain),
// and only if the first links to the chain's head: a batch that does not
// (another writer moved the head) fails with identity.ErrConflict.
func (s *db) AppendAudit(ctx context.Context, rs []audit.Record) error {
	if len(rs) == 0 {
		return nil
	}
	chain := s.dialect.auditChain
	cols := 9
	if chain != "" {
		cols++
	}
	args := make([]any, 0, cols*min(len(rs), auditRowsPerInsert))
	// No write lock: on SQLite the writer connection serializes anyway,
	// and on PostgreSQL the chain's head row does, per chain.
	err := s.tx(ctx, "", func(tx *sql.Tx) error {
		if chain != "" {
			if err := advanceChain(ctx, tx, chain, rs, toMicros(stamp(s.now))); err != nil {
				return err
			}
		}
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
				if chain != "" {
					args = append(args, chain)
				}
				args = append(args, r.ID, r.Timestamp.UnixMicro(), r.AgentID, r.Action, r.Decision, r.TraceID, string(body), r.PrevHash, r.Hash)
			}
			if _, err := tx.ExecContext(ctx, insertAuditSQL(len(batch), chain != ""), args...); err != nil {
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

// advanceChain moves chain's head from the hash rs links to onto its last
// record's, creating the chain if rs starts one. The head row's lock holds
// any other writer of the chain back until commit; that writer then finds
// the head moved and fails rather than fork the chain.
func advanceChain(ctx context.Context, tx *sql.Tx, chain string, rs []audit.Record, now int64) error {
	from, to := rs[0].PrevHash, rs[len(rs)-1].Hash
	res, err := tx.ExecContext(ctx, `UPDATE audit_chains SET head = $3, records = records + $4, updated_at = $5
		WHERE chain_id = $1 AND head = $2`, chain, from, to, len(rs), now)
	if err != nil {
		return fmt.Errorf("audit chain %q: %w", chain, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var head string
	switch err := tx.QueryRowContext(ctx, `SELECT head FROM audit_chains WHERE chain_id = $1`, chain).Scan(&head); {
	case err == nil:
		return fmt.Errorf("%w: audit chain %q ends at %.12s…, the batch links to %.12s…: another writer appends to this chain",
			identity.ErrConflict, chain, head, from)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("audit chain %q: %w", chain, err)
	case from != audit.GenesisHash:
		return fmt.Errorf("%w: audit chain %q does not exist, and the batch does not start one (it links to %.12s…)",
			identity.ErrConflict, chain, from)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_chains (chain_id, head, records, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4)`, chain, to, len(rs), now); err != nil {
		return fmt.Errorf("audit chain %q: %w", chain, conflictOr(err))
	}
	return nil
}

// insertAuditSQL is a multi-row INSERT for n records, each with its chain
// first if chained; one statement a batch is several times cheaper than a
// prepared statement run n times.
func insertAuditSQL(n int, chained bool) string {
	cols := 9
	var b strings.Builder
	b.Grow(120 + n*44)
	b.WriteString("INSERT INTO audit (")
	if chained {
		cols++
		b.WriteString("chain_id, ")
	}
	b.WriteString("id, ts, agent_id, action, decision, trace_id, record, prev_hash, hash) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "$%d", i*cols+c+1)
		}
		b.WriteByte(')')
	}
	return b.String()
}

// LastAuditHash returns the hash of the last stored record (on PostgreSQL:
// of this handle's chain), or audit.GenesisHash when there is none: where
// the next record links to.
func (s *db) LastAuditHash(ctx context.Context) (string, error) {
	var h string
	var err error
	if chain := s.dialect.auditChain; chain != "" {
		err = s.r.QueryRowContext(ctx, `SELECT head FROM audit_chains WHERE chain_id = $1`, chain).Scan(&h)
	} else {
		err = s.r.QueryRowContext(ctx, `SELECT hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&h)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return audit.GenesisHash, nil
	case err != nil:
		return "", fmt.Errorf("last audit hash: %w", err)
	}
	return h, nil
}

// AuditChains lists the trail's hash chains by name: on SQLite one, named
// "", when there are records; on PostgreSQL one per writer that appended.
func (s *db) AuditChains(ctx context.Context) ([]audit.ChainHead, error) {
	out := []audit.ChainHead{}
	if s.dialect.auditChain == "" {
		// One statement, so the head and the count come from one snapshot.
		var h audit.ChainHead
		err := s.r.QueryRowContext(ctx, `SELECT hash, (SELECT COUNT(*) FROM audit) FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&h.Head, &h.Records)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return out, nil
		case err != nil:
			return nil, fmt.Errorf("audit chains: %w", err)
		}
		return append(out, h), nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT chain_id, head, records FROM audit_chains ORDER BY chain_id`)
	if err != nil {
		return nil, fmt.Errorf("audit chains: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h audit.ChainHead
		if err := rows.Scan(&h.ID, &h.Head, &h.Records); err != nil {
			return nil, fmt.Errorf("audit chains: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit chains: %w", err)
	}
	return out, nil
}

// ScanAudit calls fn for every stored record, stopping at the first error
// fn returns: in chain order on SQLite; on PostgreSQL chain after chain (by
// name), each in its order, each starting at audit.GenesisHash (verify them
// with audit.VerifyChains). A row whose JSON does not decode is handed to
// fn as a record with only its ID and hashes, so a verifier reports it
// rather than the scan failing.
func (s *db) ScanAudit(ctx context.Context, fn func(audit.Record) error) error {
	q := `SELECT id, record, prev_hash, hash FROM audit ORDER BY seq`
	if s.dialect.auditChain != "" {
		q = `SELECT id, record, prev_hash, hash FROM audit ORDER BY chain_id, seq`
	}
	return s.scanAudit(ctx, fn, q)
}

// ScanAuditChain is ScanAudit for one chain (named as AuditChains names it).
func (s *db) ScanAuditChain(ctx context.Context, id string, fn func(audit.Record) error) error {
	if s.dialect.auditChain == "" {
		if id != "" {
			return fmt.Errorf("scan audit chain %q: %w: the store has one chain, named \"\"", id, identity.ErrNotFound)
		}
		return s.ScanAudit(ctx, fn)
	}
	return s.scanAudit(ctx, fn, `SELECT id, record, prev_hash, hash FROM audit WHERE chain_id = $1 ORDER BY seq`, id)
}

func (s *db) scanAudit(ctx context.Context, fn func(audit.Record) error, query string, args ...any) error {
	rows, err := s.r.QueryContext(ctx, query, args...)
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
