package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// Audit query limits (every query is bounded; docs/audit.md).
const (
	// DefaultAuditLimit is the page size when AuditFilter.Limit is 0.
	DefaultAuditLimit = 100
	// MaxAuditLimit is the largest page QueryAudit returns.
	MaxAuditLimit = 1000
	// auditTopN is how many entries each AuditStats ranking holds.
	auditTopN = 10
)

// AuditFilter selects audit records. Zero fields do not filter.
type AuditFilter struct {
	AgentID  string
	Action   string // exactly this action, or, ending in '*', actions with that prefix
	Decision string // allow or deny
	TraceID  string
	From, To time.Time // From ≤ timestamp < To
	// Shadow keeps only records that carry a shadow answer (audit.Shadow).
	Shadow bool
	// Limit bounds a page of QueryAudit: 0 means DefaultAuditLimit. A scan
	// (ScanAuditFiltered) reads everything that matches unless Limit is set.
	Limit int
	// Before is a cursor from a previous page: QueryAudit returns records
	// older than it. After is one from a scan: ScanAuditFiltered returns
	// records newer than it.
	Before, After string
}

// AuditPage is one page of records, newest first. Next is the cursor of
// the page after (older records), empty on the last page; Newest is the
// cursor of the page's first record, from which a scan follows what comes
// later (empty for an empty page).
type AuditPage struct {
	Records []audit.Record
	Next    string
	Newest  string
}

// Cursors are opaque to callers; inside they are the chain position.
const cursorPrefix = "c"

func encodeCursor(seq int64) string { return cursorPrefix + strconv.FormatInt(seq, 36) }

func decodeCursor(c string) (int64, error) {
	seq, err := strconv.ParseInt(strings.TrimPrefix(c, cursorPrefix), 36, 64)
	if !strings.HasPrefix(c, cursorPrefix) || err != nil || seq < 0 {
		return 0, fmt.Errorf("%w: cursor %q is not one MeshGuard gave", ErrInvalidFilter, c)
	}
	return seq, nil
}

// resolve is f's WHERE clause and arguments, with f's agent (if any)
// resolved to its number first; none is true when f's agent has no
// records, so nothing matches and no query need run.
func (s *db) resolve(ctx context.Context, f AuditFilter) (where string, args []any, none bool, err error) {
	agent := int64(noAgent)
	if f.AgentID != "" {
		n, ok, err := s.auditAgentNumber(ctx, f.AgentID)
		if err != nil {
			return "", nil, false, err
		}
		agent, none = n, !ok
	}
	where, args, err = f.where(s.dialect, agent)
	return where, args, none, err
}

// where builds the WHERE clause and its arguments, the values in d's
// stored forms; agent is the number of f.AgentID (noAgent when it has
// none).
func (f AuditFilter) where(d dialect, agent int64) (string, []any, error) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.AgentID != "" {
		add("agent = ?", agent)
	}
	switch {
	case strings.HasSuffix(f.Action, "*"):
		// A range, not LIKE: '_' and '%' are legal in actions and the two
		// engines' LIKE differ in case sensitivity.
		prefix := strings.TrimSuffix(f.Action, "*")
		if prefix != "" {
			add("action >= ?", prefix)
			add("action < ?", prefix+"\U0010FFFF")
		}
	case f.Action != "":
		add("action = ?", f.Action)
	}
	switch f.Decision {
	case "":
	case "allow", "deny":
		add("decision = ?", d.decisionArg(f.Decision))
	default:
		return "", nil, fmt.Errorf("%w: decision %q: expected allow or deny", ErrInvalidFilter, f.Decision)
	}
	if f.TraceID != "" {
		// The expression of the audit_trace index, so the index is used.
		add(d.tracePrefixSQL()+" = ?", d.tracePrefixArg(f.TraceID))
		add("trace_id = ?", d.traceArg(f.TraceID))
	}
	if !f.From.IsZero() {
		add("ts >= ?", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		add("ts < ?", f.To.UnixMicro())
	}
	if f.Shadow {
		// A column: the record is stored compact. Reading a row checks it
		// against the record (decodeAuditBody).
		add("shadow = ?", true)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return "", nil, fmt.Errorf("%w: from must be before to", ErrInvalidFilter)
	}
	if f.Limit < 0 {
		return "", nil, fmt.Errorf("%w: limit %d: must not be negative", ErrInvalidFilter, f.Limit)
	}
	for _, c := range []struct {
		cursor, cond string
	}{{f.Before, "seq < ?"}, {f.After, "seq > ?"}} {
		if c.cursor == "" {
			continue
		}
		seq, err := decodeCursor(c.cursor)
		if err != nil {
			return "", nil, err
		}
		add(c.cond, seq)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// QueryAudit returns a page of records matching f, newest first.
func (s *db) QueryAudit(ctx context.Context, f AuditFilter) (AuditPage, error) {
	if f.After != "" {
		return AuditPage{}, fmt.Errorf("query audit: %w: after is for scans; pages go back with before", ErrInvalidFilter)
	}
	if f.Limit > MaxAuditLimit {
		return AuditPage{}, fmt.Errorf("query audit: %w: limit %d: expected 1 to %d", ErrInvalidFilter, f.Limit, MaxAuditLimit)
	}
	where, args, none, err := s.resolve(ctx, f)
	if err != nil {
		return AuditPage{}, fmt.Errorf("query audit: %w", err)
	}
	if none {
		return AuditPage{}, nil
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultAuditLimit
	}
	// One more than the page shows whether there is a next page.
	// With no filter but the cursor, the page holds every row between its
	// first and last: rows link to the page's rows.
	contiguous := f == AuditFilter{Before: f.Before, Limit: f.Limit}
	cols := s.auditAnswerSelect()
	if contiguous {
		cols = auditPlainSelect
	}
	q := `SELECT ` + cols + ` FROM audit` + where + ` ORDER BY seq DESC LIMIT ` + strconv.Itoa(limit+1)
	var page AuditPage
	var last int64
	err = s.readAuditAnswer(ctx, q, args, contiguous, func(seq int64, r audit.Record) error {
		if f.Shadow && r.Shadow == nil {
			return nil // the text search's superset
		}
		if len(page.Records) == limit {
			page.Next = encodeCursor(last)
			return nil
		}
		if len(page.Records) == 0 {
			page.Newest = encodeCursor(seq)
		}
		page.Records = append(page.Records, r)
		last = seq
		return nil
	})
	if err != nil {
		return AuditPage{}, fmt.Errorf("query audit: %w", err)
	}
	return page, nil
}

// ScanAuditFiltered calls fn for each record matching f in chain order
// (oldest first) with the record's cursor, stopping at fn's first error.
// It streams: export and follow use it on any number of records.
func (s *db) ScanAuditFiltered(ctx context.Context, f AuditFilter, fn func(r audit.Record, cursor string) error) error {
	where, args, none, err := s.resolve(ctx, f)
	if err != nil || none {
		if err != nil {
			err = fmt.Errorf("scan audit: %w", err)
		}
		return err
	}
	q := `SELECT ` + s.auditSelect() + ` FROM audit` + where + ` ORDER BY seq`
	if f.Limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	if err := s.scanAuditRows(ctx, q, args, func(seq int64, r audit.Record) error {
		if f.Shadow && r.Shadow == nil {
			return nil // the text search's superset
		}
		return fn(r, encodeCursor(seq))
	}); err != nil {
		return fmt.Errorf("scan audit: %w", err)
	}
	return nil
}

// auditSelect is the columns scanAuditRows reads. A row's prev_hash is
// empty when it is the hash of the row before it in its chain
// (insertAudit): it is then read from that row or, when retention deleted
// it, from the anchor retention left in its place, or it is the genesis
// hash (NULL here). A deleted or reordered row thus changes what the next
// row links to, which its hash covers.
func (s *db) auditSelect() string { return s.auditSelectLinked("") }

// auditSelectChain is auditSelect for a scan of one chain's rows in order
// from some position: each row but the first is linked to the row read
// before it (a window, where auditSelect looks each one up).
func (s *db) auditSelectChain() string { return s.auditSelectLinked("LAG(hash) OVER (ORDER BY seq), ") }

func (s *db) auditSelectLinked(lag string) string {
	return `seq, id, record, ` + s.auditLinkSQL(lag) + `,
		hash, ` + auditAgentSQL + `, action, decision, ts, trace_id, status, reason, source, shadow`
}

// auditLinkSQL is a row's link: its prev_hash, or lag, or the previous
// row's hash, or retention's anchor, or NULL (genesis).
func (s *db) auditLinkSQL(lag string) string {
	return `CASE WHEN length(prev_hash) > 0 THEN prev_hash ELSE COALESCE(` + lag + `
			` + s.dialect.prevHashSQL("audit.chain_id", "audit.seq") + `,
			(SELECT ` + s.dialect.unhex("a.last_hash") + ` FROM audit_anchors a WHERE a.chain_id = audit.chain_id AND a.last_seq < audit.seq ORDER BY a.last_seq DESC LIMIT 1)) END`
}

// prevHashSQL is the hash of the row of chain just before position seq,
// or NULL, as one or two expressions for a COALESCE. On PostgreSQL the
// first reads the row just before seq (the seq index, one entry) and
// keeps it if it is of the same chain, the usual case; the second, for
// the rest, reads the row before (chain, seq) in the (chain_id, seq)
// index, kept if it is of the same chain. Each is written so that one
// index answers it: "chain_id = chain AND seq < seq ORDER BY seq DESC"
// let a generic plan walk the seq index backwards filtering on the chain,
// and a row whose chain last wrote 98k rows earlier took 38 ms to link
// (docs/performance.md, round six). SQLite has no (chain_id, seq) index
// and one chain a file, so its walk is one step.
func (d dialect) prevHashSQL(chain, seq string) string {
	if d.name == "sqlite" {
		return `(SELECT p.hash FROM audit p WHERE p.chain_id = ` + chain + ` AND p.seq < ` + seq + ` ORDER BY p.seq DESC LIMIT 1)`
	}
	return `(SELECT CASE WHEN p.chain_id = ` + chain + ` THEN p.hash END FROM audit p
				WHERE p.seq < ` + seq + ` ORDER BY p.seq DESC LIMIT 1),
			(SELECT CASE WHEN p.chain_id = ` + chain + ` THEN p.hash END FROM audit p
				WHERE (p.chain_id, p.seq) < (` + chain + `, ` + seq + `) ORDER BY p.chain_id DESC, p.seq DESC LIMIT 1)`
}

// unhex is the SQL that turns a hex column into its bytes.
func (d dialect) unhex(col string) string {
	if d.name == "sqlite" {
		return "unhex(" + col + ")"
	}
	return "decode(" + col + ", 'hex')"
}

// scanAuditRows runs q (selecting auditSelect) and decodes each row
// (decodeAuditBody). A row that does not decode is handed on with only its
// id and hashes, marked Unreadable, so a verifier reports it rather than
// the scan failing.
func (s *db) scanAuditRows(ctx context.Context, q string, args []any, fn func(seq int64, r audit.Record) error) error {
	rows, err := s.reads.query(ctx, s.r, q, args)
	if err != nil {
		return err
	}
	return s.dialect.scanAuditRowsFrom(rows, fn)
}

func (d dialect) scanAuditRowsOn(ctx context.Context, on queryer, q string, args []any, fn func(seq int64, r audit.Record) error) error {
	rows, err := on.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	return d.scanAuditRowsFrom(rows, fn)
}

func (d dialect) scanAuditRowsFrom(rows *sql.Rows, fn func(seq int64, r audit.Record) error) error {
	defer rows.Close()
	// Made once, not per row: each escapes to the heap through Scan.
	id, decision, trace, source := d.auditCols()
	for rows.Next() {
		var seq int64
		var c auditColumns
		var body, prev, hash []byte
		if err := rows.Scan(&seq, &id, &body, &prev, &hash, &c.agentID, &c.action, &decision, &c.ts, &trace, &c.status,
			&c.reason, &source, &c.shadow); err != nil {
			return err
		}
		c.id, c.decision, c.traceID, c.source = id.s, decision.s, trace.s, source.s
		r := decodeAuditBody(body, c)
		if col := d.storedForm(&c, &id, &decision, &trace, &source); col != "" && r.Unreadable == "" {
			r.Unreadable = "its " + col + " column is not in the form the store writes for its value (the row was edited)"
		}
		// The columns are what the chain links; the record is what was hashed.
		r.PrevHash, r.Hash = hashText(prev), hashText(hash)
		if prev == nil {
			r.PrevHash = audit.GenesisHash // no row and no anchor before it
		}
		if err := fn(seq, r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AuditStats counts the records with from ≤ timestamp < to: totals, and
// the top agents, actions, denial reasons and sources.
func (s *db) AuditStats(ctx context.Context, from, to time.Time) (audit.Stats, error) {
	if !from.Before(to) {
		return audit.Stats{}, fmt.Errorf("audit stats: %w: from must be before to", ErrInvalidFilter)
	}
	st := audit.Stats{From: from.UTC(), To: to.UTC()}
	span := []any{from.UnixMicro(), to.UnixMicro()}
	rank := func(col, extra string) ([]audit.Count, error) {
		key, limit := col, ` LIMIT `+strconv.Itoa(auditTopN)
		switch col {
		case "agent":
			key = auditAgentSQL
		case "source":
			// Stored as numbers: ranked here by name, so all of them (the
			// engine writes six).
			limit = ""
		}
		q := `SELECT ` + key + `, COUNT(*), SUM(CASE WHEN decision = ` + s.dialect.denySQL() + ` THEN 1 ELSE 0 END) FROM audit
			WHERE ts >= $1 AND ts < $2` + extra + ` GROUP BY ` + col + ` ORDER BY 2 DESC, 1` + limit
		rows, err := s.r.QueryContext(ctx, q, span...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := []audit.Count{}
		for rows.Next() {
			var c audit.Count
			var k any
			if err := rows.Scan(&k, &c.Total, &c.Denied); err != nil {
				return nil, err
			}
			switch col {
			case "decision":
				c.Key = decisionText(k)
			case "source":
				c.Key = s.dialect.sourceKey(k)
			default:
				c.Key = textOf(k)
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if limit == "" {
			slices.SortStableFunc(out, func(a, b audit.Count) int {
				return cmp.Or(cmp.Compare(b.Total, a.Total), strings.Compare(a.Key, b.Key))
			})
			out = out[:min(len(out), auditTopN)]
		}
		return out, nil
	}
	var err error
	var byDecision []audit.Count
	for _, r := range []struct {
		dst        *[]audit.Count
		col, extra string
	}{
		{&byDecision, "decision", ""},
		{&st.Agents, "agent", ""},
		{&st.Actions, "action", ""},
		{&st.DenyReasons, "reason", " AND decision = " + s.dialect.denySQL()},
		{&st.Sources, "source", ""},
	} {
		if *r.dst, err = rank(r.col, r.extra); err != nil {
			return audit.Stats{}, fmt.Errorf("audit stats by %s: %w", r.col, err)
		}
	}
	for _, c := range byDecision {
		st.Total += c.Total
		if c.Key == "allow" {
			st.Allowed = c.Total
		} else {
			st.Denied = c.Total
		}
	}
	return st, nil
}

// auditAnchor is where verification of a chain starts: the position and
// hash of the last record retention deleted from it, or 0 and
// audit.GenesisHash.
func (s *db) auditAnchor(ctx context.Context, chain string) (int64, string, error) {
	var seq int64
	var h string
	err := s.r.QueryRowContext(ctx, `SELECT last_seq, last_hash FROM audit_anchors WHERE chain_id = $1 ORDER BY last_seq DESC LIMIT 1`, chain).Scan(&seq, &h)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, audit.GenesisHash, nil
	case err != nil:
		return 0, "", fmt.Errorf("audit anchor: %w", err)
	}
	return seq, h, nil
}

// PruneAudit deletes the records older than before, in one transaction,
// and keeps an anchor per chain (the last deleted record's position, hash
// and time, and how many were deleted) so the records left still verify
// from it. It returns how many records it deleted.
func (s *db) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	err := s.tx(ctx, s.dialect.writeLock, func(tx *sql.Tx) error {
		// Delete by chain position, not by time, so each chain left is
		// whole: a record stamped just after before but stored ahead of
		// the last old one (clocks differ by microseconds) goes too.
		cuts, err := pruneCuts(ctx, tx, before)
		if err != nil {
			return err
		}
		for _, c := range cuts {
			var rec audit.Record
			if err := s.dialect.scanAuditRowsOn(ctx, tx, `SELECT `+s.auditSelect()+` FROM audit WHERE seq = $1`, []any{c.seq}, func(_ int64, r audit.Record) error {
				rec = r
				return nil
			}); err != nil {
				return err
			}
			// The time column is read for the cut: an edited one must not
			// make retention delete records that are not due. The record's
			// time comes from it, so its hash tells.
			if rec.Unreadable != "" || audit.NewVerifier(rec.PrevHash).Next(&rec) != nil {
				return fmt.Errorf("audit record at position %d: it does not match its hash (the row was edited); run meshguard audit verify", c.seq)
			}
			ts, hash := rec.Timestamp.UnixMicro(), rec.Hash
			res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE chain_id = $1 AND seq <= $2`, c.chain, c.seq)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			total += n
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_anchors (chain_id, last_seq, last_hash, last_ts, deleted, pruned_at)
				VALUES ($1, $2, $3, $4, $5, $6)`, c.chain, c.seq, hash, ts, n, toMicros(stamp(s.now))); err != nil {
				return err
			}
			if s.dialect.auditChain != "" {
				// The head stays; the count is of the records held.
				if _, err := tx.ExecContext(ctx, `UPDATE audit_chains SET records = records - $2 WHERE chain_id = $1`, c.chain, n); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	return total, nil
}

// pruneCut is where retention cuts one chain: its last record before the
// cut-off.
type pruneCut struct {
	chain string
	seq   int64
}

func pruneCuts(ctx context.Context, tx *sql.Tx, before time.Time) ([]pruneCut, error) {
	rows, err := tx.QueryContext(ctx, `SELECT chain_id, MAX(seq) FROM audit WHERE ts < $1 GROUP BY chain_id`, before.UnixMicro())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cuts []pruneCut
	for rows.Next() {
		var c pruneCut
		if err := rows.Scan(&c.chain, &c.seq); err != nil {
			return nil, err
		}
		cuts = append(cuts, c)
	}
	return cuts, rows.Err()
}
