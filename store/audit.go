package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
)

// auditRowsPerInsert bounds one INSERT statement: 14 parameters a row stay
// well under SQLite's 32766-parameter limit (PostgreSQL's is 65535).
const auditRowsPerInsert = 256

// auditCols is the number of columns AppendAudit writes a row.
const auditCols = 14

// AppendAudit stores sealed records in one transaction, after every record
// already stored and in the order given: that order is the hash chain's.
// All are stored or, on error, none. The stored record is its canonical
// encoding in the compact form of auditrow.go, from which it is rebuilt
// byte for byte.
//
// On PostgreSQL the records go to this handle's chain (WithAuditChain),
// and only if the first links to the chain's head: a batch that does not
// (another writer moved the head) fails with identity.ErrConflict.
func (s *db) AppendAudit(ctx context.Context, rs []audit.Record) error {
	if len(rs) == 0 {
		return nil
	}
	chain := s.dialect.auditChain
	// No write lock: on SQLite the writer connection serializes anyway,
	// and on PostgreSQL the chain's head row does, per chain.
	err := s.auditTx(ctx, func(tx *sql.Tx, conn *sql.Conn) error {
		if chain != "" {
			if err := advanceChain(ctx, tx, chain, rs, toMicros(stamp(s.now))); err != nil {
				return err
			}
		} else if err := linksToLast(ctx, tx, s.writerReads.lastHash, rs); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, conn, chain, rs)
	})
	if errors.Is(err, errAlreadyStored) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if s.auditCommitted != nil {
		s.auditCommitted(len(rs))
	}
	return nil
}

// auditTx runs fn in a write transaction, committing if fn returns nil. On
// SQLite the transaction runs on a sql.Conn, passed to fn, so the INSERTs
// can reach the driver (execAuditInsert); on PostgreSQL conn is nil.
func (s *db) auditTx(ctx context.Context, fn func(tx *sql.Tx, conn *sql.Conn) error) error {
	if s.dialect.name != "sqlite" {
		return s.tx(ctx, "", func(tx *sql.Tx) error { return fn(tx, nil) })
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	if err := fn(tx, conn); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// errAlreadyStored says a batch is already in its chain: a retry of a
// commit whose acknowledgement was lost (the connection died as it
// committed). AppendAudit then succeeds without storing it twice, so the
// writer does not retry a stored batch forever.
var errAlreadyStored = errors.New("batch already stored")

// linksToLast checks, on SQLite's single chain, that rs links to the last
// record stored (or the anchor retention left, or the genesis hash): a
// store that lost its newest records is found at the next batch, not by
// the next verification. One indexed read a batch.
func linksToLast(ctx context.Context, tx *sql.Tx, st *sql.Stmt, rs []audit.Record) error {
	var raw []byte
	var row *sql.Row
	if st != nil {
		row = tx.StmtContext(ctx, st).QueryRowContext(ctx)
	} else {
		row = tx.QueryRowContext(ctx, lastAuditHashSQL)
	}
	err := row.Scan(&raw)
	last := hashText(raw)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, `SELECT last_hash FROM audit_anchors ORDER BY last_seq DESC LIMIT 1`).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			last, err = audit.GenesisHash, nil
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("audit chain: %w", err)
	case last == rs[0].PrevHash:
		return nil
	case last == rs[len(rs)-1].Hash:
		return errAlreadyStored
	}
	return fmt.Errorf("%w: %w: the audit chain ends at %.12s…, the batch links to %.12s…", identity.ErrConflict, audit.ErrHeadMoved, last, rs[0].PrevHash)
}

// insertAudit inserts sealed records with multi-row INSERTs, cached per
// chunk size (auditinsert.go).
func (s *db) insertAudit(ctx context.Context, tx *sql.Tx, conn *sql.Conn, chain string, rs []audit.Record) error {
	args := make([]any, 0, auditCols*min(len(rs), auditRowsPerInsert))
	agents, err := s.auditAgentNumbers(ctx, tx, rs)
	if err != nil {
		return err
	}
	for start, k := 0, 0; start < len(rs); start += k {
		k = auditChunk(len(rs) - start)
		batch := rs[start : start+k]
		args = args[:0]
		for i := range batch {
			r := &batch[i]
			if r.ID == "" || r.Hash == "" || r.PrevHash == "" || (r.Decision != "allow" && r.Decision != "deny") {
				return fmt.Errorf("%w: record %d is not a sealed record (id, decision and hashes are required)", audit.ErrRecordRefused, start+i)
			}
			if col := nonUTF8Column(r.ID, r.TraceID, r.Action, r.Reason, r.Source); col != "" {
				return fmt.Errorf("%w: record %d: its %s is not UTF-8", audit.ErrRecordRefused, start+i, col)
			}
			canon, err := r.Canonical()
			if err != nil {
				return fmt.Errorf("%w: record %s: %w", audit.ErrRecordRefused, r.ID, err)
			}
			body, err := encodeAuditBody(r, canon)
			if err != nil {
				return fmt.Errorf("%w: record %s: %w", audit.ErrRecordRefused, r.ID, err)
			}
			prev, err := hashBytes(r.PrevHash)
			if err != nil {
				return fmt.Errorf("%w: record %s: prevHash: %w", audit.ErrRecordRefused, r.ID, err)
			}
			if start+i > 0 && rs[start+i-1].Hash == r.PrevHash {
				// It links to the row inserted just before it in this
				// chain, which is where reading it looks (auditSelect).
				// The batch's first row keeps its link: what is stored
				// before it may not be what it links to (a gap).
				prev = prev[:0]
			}
			hash, err := hashBytes(r.Hash)
			if err != nil {
				return fmt.Errorf("%w: record %s: %w", audit.ErrRecordRefused, r.ID, err)
			}
			d := s.dialect
			if !d.chainLiteral() {
				args = append(args, chain)
			}
			args = append(args, d.idArg(r.ID), r.Timestamp.UnixMicro(), agents[r.AgentID], r.Action, d.decisionArg(r.Decision),
				d.traceArg(r.TraceID), int64(r.Status), r.Reason, d.sourceArg(r.Source), r.Shadow != nil, body, prev, hash)
		}
		if err := s.execAuditInsert(ctx, tx, conn, len(batch), args); err != nil {
			if isDataError(err) {
				// Only this statement's refusal is the records' fault: a
				// conflict on the chain's head is another writer's.
				err = fmt.Errorf("%w: %w", audit.ErrRecordRefused, err)
			}
			return fmt.Errorf("records %s…%s: %w", batch[0].ID, batch[len(batch)-1].ID, conflictOr(err))
		}
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
	case err == nil && head == to:
		return errAlreadyStored
	case err == nil:
		return fmt.Errorf("%w: %w: audit chain %q ends at %.12s…, the batch links to %.12s…: the store lost records, or another writer appends to this chain",
			identity.ErrConflict, audit.ErrHeadMoved, chain, head, from)
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

// insertAuditSQL is a multi-row INSERT for n records; one statement a
// batch is several times cheaper than a prepared statement run n times.
// On SQLite its parameters are anonymous (?): modernc.org/sqlite looks each
// numbered parameter up by a linear scan, which made a 256-row statement
// quadratic (the audit writer spent 60% of its time there). PostgreSQL
// takes only numbered ones.
func (s *db) insertAuditSQL(n int) string {
	var b strings.Builder
	b.Grow(150 + n*(6*auditCols+3))
	b.WriteString("INSERT INTO audit (chain_id, id, ts, agent, action, decision, trace_id, status, reason, source, shadow, record, prev_hash, hash) VALUES ")
	anonymous := s.dialect.name == "sqlite"
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range auditCols {
			if c > 0 {
				b.WriteByte(',')
			}
			if c == 0 && s.dialect.chainLiteral() {
				b.WriteString("''")
				continue
			}
			if anonymous {
				b.WriteByte('?')
			} else {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(i*auditCols + c + 1))
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// chainLiteral reports whether the INSERT writes chain_id as an empty
// string literal rather than a parameter: SQLite has one chain, named "", and every
// text parameter costs its driver a C allocation, a copy, a bind and an
// unbind a row.
func (d dialect) chainLiteral() bool { return d.auditChain == "" && d.name == "sqlite" }

// LastAuditHash returns where the next record links to: the hash of the
// last stored record (on PostgreSQL: this handle's chain's head), or, when
// retention left none, the chain's anchor (audit.GenesisHash on a new
// trail).
func (s *db) LastAuditHash(ctx context.Context) (string, error) {
	var h string
	var err error
	chain := s.dialect.auditChain
	if chain != "" {
		err = s.r.QueryRowContext(ctx, `SELECT head FROM audit_chains WHERE chain_id = $1`, chain).Scan(&h)
	} else {
		var raw []byte
		err = s.r.QueryRowContext(ctx, `SELECT hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&raw)
		h = hashText(raw)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, h, err := s.auditAnchor(ctx, chain)
		return h, err
	case err != nil:
		return "", fmt.Errorf("last audit hash: %w", err)
	}
	return h, nil
}

// AuditChains lists the trail's hash chains by name, with where each
// verification starts (its newest retention anchor): on SQLite one, named
// "", when there are records; on PostgreSQL one per writer that appended.
func (s *db) AuditChains(ctx context.Context) ([]audit.ChainHead, error) {
	out := []audit.ChainHead{}
	if s.dialect.auditChain == "" {
		// One statement, so the head and the count come from one snapshot.
		var h audit.ChainHead
		var head []byte
		err := s.r.QueryRowContext(ctx, `SELECT seq, hash, (SELECT COUNT(*) FROM audit) FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&h.Seq, &head, &h.Records)
		h.Head = hashText(head)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return out, nil
		case err != nil:
			return nil, fmt.Errorf("audit chains: %w", err)
		}
		if h.AnchorSeq, h.Anchor, err = s.auditAnchor(ctx, ""); err != nil {
			return nil, fmt.Errorf("audit chains: %w", err)
		}
		return append(out, h), nil
	}
	// The head's position is the chain's largest: audit_chains and audit
	// are written in one transaction, and one statement reads one snapshot.
	rows, err := s.r.QueryContext(ctx, `SELECT c.chain_id, c.head, c.records,
			COALESCE((SELECT a.last_hash FROM audit_anchors a WHERE a.chain_id = c.chain_id ORDER BY a.last_seq DESC LIMIT 1), $1),
			COALESCE((SELECT MAX(a.last_seq) FROM audit_anchors a WHERE a.chain_id = c.chain_id), 0),
			COALESCE((SELECT MAX(r.seq) FROM audit r WHERE r.chain_id = c.chain_id), 0)
		FROM audit_chains c ORDER BY c.chain_id`, audit.GenesisHash)
	if err != nil {
		return nil, fmt.Errorf("audit chains: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h audit.ChainHead
		if err := rows.Scan(&h.ID, &h.Head, &h.Records, &h.Anchor, &h.AnchorSeq, &h.Seq); err != nil {
			return nil, fmt.Errorf("audit chains: %w", err)
		}
		if h.Seq == 0 {
			h.Seq = h.AnchorSeq // retention emptied it
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
// name), each in its order (verify them with audit.VerifyChains). A row
// whose JSON does not decode is handed to fn as a record with only its ID
// and hashes, so a verifier reports it rather than the scan failing.
func (s *db) ScanAudit(ctx context.Context, fn func(audit.Record) error) error {
	err := s.scanAuditRows(ctx, `SELECT `+s.auditSelect()+` FROM audit ORDER BY chain_id, seq`, nil,
		func(_ int64, r audit.Record) error { return fn(r) })
	if err != nil {
		return fmt.Errorf("scan audit: %w", err)
	}
	return nil
}

// ScanAuditChainAfter calls fn for the records of one chain after position
// after, in order, with their positions.
func (s *db) ScanAuditChainAfter(ctx context.Context, id string, after int64, fn func(seq int64, r audit.Record) error) error {
	err := s.scanAuditRows(ctx, `SELECT `+s.auditSelectChain()+` FROM audit WHERE chain_id = $1 AND seq > $2 ORDER BY seq`, []any{id, after}, fn)
	if err != nil {
		return fmt.Errorf("scan audit chain %q: %w", id, err)
	}
	return nil
}

// AuditRecordHash returns the hash of the record at position seq of a
// chain, and false if there is none.
func (s *db) AuditRecordHash(ctx context.Context, id string, seq int64) (string, bool, error) {
	var h []byte
	err := s.r.QueryRowContext(ctx, `SELECT hash FROM audit WHERE chain_id = $1 AND seq = $2`, id, seq).Scan(&h)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("audit record at %d: %w", seq, err)
	}
	return hashText(h), true, nil
}

// ScanAuditChain is ScanAudit for one chain (named as AuditChains names it).
func (s *db) ScanAuditChain(ctx context.Context, id string, fn func(audit.Record) error) error {
	err := s.scanAuditRows(ctx, `SELECT `+s.auditSelectChain()+` FROM audit WHERE chain_id = $1 ORDER BY seq`, []any{id},
		func(_ int64, r audit.Record) error { return fn(r) })
	if err != nil {
		return fmt.Errorf("scan audit chain %q: %w", id, err)
	}
	return nil
}
