package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// MaxDeadLetterPage bounds one page of AuditDeadLetters.
const MaxDeadLetterPage = 1000

// DeadLetterAudit keeps a record the store refused as data (see
// audit.DeadLetter) on this handle's chain, outside the hash chain. If the
// store refuses the record's JSON too, it keeps an ASCII-quoted form, cut
// at audit.MaxDeadLetterRecord, with every text escaped: what can be
// stored of it rather than nothing.
func (s *db) DeadLetterAudit(ctx context.Context, d audit.DeadLetter) error {
	d.Chain = s.dialect.auditChain
	err := s.insertDeadLetter(ctx, d)
	if isDataError(err) {
		d.ID, d.AfterHash, d.Error = strconv.QuoteToASCII(d.ID), strconv.QuoteToASCII(d.AfterHash), strconv.QuoteToASCII(d.Error)
		d.Record, d.Escaped = strconv.QuoteToASCII(d.Record), true
		if len(d.Record) > audit.MaxDeadLetterRecord {
			d.Record = d.Record[:audit.MaxDeadLetterRecord] + "…"
		}
		err = s.insertDeadLetter(ctx, d)
	}
	if err != nil {
		return fmt.Errorf("dead-letter audit record: %w", err)
	}
	return nil
}

func (s *db) insertDeadLetter(ctx context.Context, d audit.DeadLetter) error {
	escaped := 0
	if d.Escaped {
		escaped = 1
	}
	esc := "$7 = 1"
	if s.dialect.name == "sqlite" {
		esc = "$7"
	}
	return s.tx(ctx, "", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_dead_letters (chain_id, record_id, ts, after_hash, record, escaped, error, attempts, dead_at)
			VALUES ($1, $2, $3, $4, $5, `+esc+`, $6, $8, $9)`, d.Chain, d.ID, d.Timestamp.UnixMicro(), d.AfterHash, d.Record,
			d.Error, escaped, d.Attempts, d.DeadAt.UnixMicro())
		return err
	})
}

// AuditDeadLetterSummary counts the dead letters: how many, the ids of the
// first audit.MaxSummaryIDs, and their time span.
func (s *db) AuditDeadLetterSummary(ctx context.Context) (audit.DeadLetterSummary, error) {
	var sum audit.DeadLetterSummary
	var from, to sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), MIN(ts), MAX(ts) FROM audit_dead_letters`).Scan(&sum.Count, &from, &to); err != nil {
		return sum, fmt.Errorf("audit dead letters: %w", err)
	}
	if sum.Count == 0 {
		return sum, nil
	}
	sum.From, sum.To = time.UnixMicro(from.Int64).UTC(), time.UnixMicro(to.Int64).UTC()
	page, err := s.AuditDeadLetters(ctx, audit.MaxSummaryIDs, 0, true)
	if err != nil {
		return sum, err
	}
	for _, d := range page.DeadLetters {
		sum.IDs = append(sum.IDs, d.ID)
	}
	return sum, nil
}

// DeadLetterPage is a page of dead letters. Next is the cursor of the page
// after, empty on the last.
type DeadLetterPage struct {
	DeadLetters []audit.DeadLetter
	Next        string
}

// AuditDeadLetters lists up to limit dead letters (1 to MaxDeadLetterPage)
// after the row after (0: from the start), oldest first, or, with
// oldestFirst false, before it (0: from the newest), newest first.
func (s *db) AuditDeadLetters(ctx context.Context, limit int, after int64, oldestFirst bool) (DeadLetterPage, error) {
	if limit < 1 || limit > MaxDeadLetterPage {
		return DeadLetterPage{}, fmt.Errorf("audit dead letters: %w: limit %d: expected 1 to %d", ErrInvalidFilter, limit, MaxDeadLetterPage)
	}
	if after < 0 {
		return DeadLetterPage{}, fmt.Errorf("audit dead letters: %w: cursor %d", ErrInvalidFilter, after)
	}
	q := `SELECT id, chain_id, record_id, ts, after_hash, record, escaped, error, attempts, dead_at FROM audit_dead_letters`
	var conds []string
	var args []any
	if after > 0 {
		args = append(args, after)
		if oldestFirst {
			conds = append(conds, "id > $1")
		} else {
			conds = append(conds, "id < $1")
		}
	}
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	if oldestFirst {
		q += " ORDER BY id"
	} else {
		q += " ORDER BY id DESC"
	}
	q += " LIMIT " + strconv.Itoa(limit+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return DeadLetterPage{}, fmt.Errorf("audit dead letters: %w", err)
	}
	defer rows.Close()
	page := DeadLetterPage{DeadLetters: []audit.DeadLetter{}}
	var last int64
	for rows.Next() {
		var d audit.DeadLetter
		var id, ts, at int64
		if err := rows.Scan(&id, &d.Chain, &d.ID, &ts, &d.AfterHash, &d.Record, &d.Escaped, &d.Error, &d.Attempts, &at); err != nil {
			return DeadLetterPage{}, fmt.Errorf("audit dead letters: %w", err)
		}
		if len(page.DeadLetters) == limit {
			page.Next = strconv.FormatInt(last, 10)
			break
		}
		d.Timestamp, d.DeadAt = time.UnixMicro(ts).UTC(), time.UnixMicro(at).UTC()
		page.DeadLetters = append(page.DeadLetters, d)
		last = id
	}
	if err := rows.Err(); err != nil {
		return DeadLetterPage{}, fmt.Errorf("audit dead letters: %w", err)
	}
	return page, nil
}
