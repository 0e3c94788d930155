package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/meshguard/meshguard/audit"
)

// Bounded answers (a page, a record by id) read their rows with a plain
// select and then fill in what the streaming select (auditSelect) looks up
// row by row: a row's agent id from the audit_agents dictionary, kept in
// memory, and its link (prev_hash, when not stored) from the answer itself
// or one batched lookup. On PostgreSQL the correlated lookups cost a
// record read by id ≈ 40% of its time (docs/performance.md, round five).
// Verification and export stream (auditSelect, auditSelectChain) and read
// the dictionary from the database on every row: an edited dictionary
// entry is reported by them even while a server holds the entry it read.

// auditPlainSelect is the columns readAuditAnswer reads for an answer
// that links its rows itself (contiguous).
const auditPlainSelect = `seq, chain_id, id, record, prev_hash, hash, agent, action, decision, ts, trace_id, status, reason, source, shadow`

// auditAnswerSelect is auditPlainSelect for the other answers: each row's
// link looked up in the statement. A second statement to look them up
// after cost a record read by id a round trip more than this saved.
//
// On PostgreSQL the statement looks up only the usual link, the row at
// the position just before when it is of the row's chain (pgAnswerLink);
// a row it leaves NULL (its chain's first, one after another chain's row
// or a gap in the positions, the first after retention) is looked up by
// fillLinks. PostgreSQL sets up every lookup a statement carries at each
// execution, run or not: auditLinkSQL's three (a backward walk of the seq
// index, of the (chain_id, seq) index, of the anchors) cost a read by id
// ≈ 9 of its ≈ 30 µs on the server (docs/performance.md, round eight).
func (s *db) auditAnswerSelect() string {
	if s.dialect.partialAnswerLink() {
		return pgAnswerSelect
	}
	return `seq, chain_id, id, record, ` + s.auditLinkSQL("") + `, hash, agent, action, decision, ts, trace_id, status, reason, source, shadow`
}

// pgAnswerSelect is auditAnswerSelect on PostgreSQL: a row's stored link,
// or the hash of the row at seq - 1 if it is of the same chain (one
// equality probe of the seq index), or NULL for fillLinks.
const pgAnswerSelect = `seq, chain_id, id, record, CASE WHEN length(prev_hash) > 0 THEN prev_hash ELSE
		(SELECT CASE WHEN p.chain_id = audit.chain_id THEN p.hash END FROM audit p WHERE p.seq = audit.seq - 1) END,
		hash, agent, action, decision, ts, trace_id, status, reason, source, shadow`

// partialAnswerLink says auditAnswerSelect may leave a row's link NULL
// for fillLinks (PostgreSQL); SQLite's looks every link up, and NULL
// there is the genesis hash.
func (d dialect) partialAnswerLink() bool { return d.name != "sqlite" }

// maxAgentNames bounds the agent ids kept in memory; past it, an answer
// reads the ones it needs.
const maxAgentNames = 16384

// linkChunks are the sizes of a batched link lookup (its statement text
// varies with them; fewer texts, fewer prepared statements).
var linkChunks = [...]int{1, 4, 16, 64}

// agentNames maps dictionary numbers to agent ids. Entries are added and
// never changed or deleted (auditagents.go), and a number is learnt only
// from a committed entry, so what is kept never goes stale.
type agentNames struct {
	mu   sync.RWMutex
	m    map[int64]string
	nums map[string]int64 // the other way, for a filter on an agent
}

// learn keeps n as id's number, both ways, within maxAgentNames. Callers
// hold mu.
func (a *agentNames) learn(n int64, id string) {
	if a.m == nil {
		a.m, a.nums = make(map[int64]string), make(map[string]int64)
	}
	if len(a.m) < maxAgentNames {
		a.m[n], a.nums[id] = id, n
	}
}

// answerRow is one row of a bounded answer before its record is built.
type answerRow struct {
	seq        int64
	chain      string
	body       []byte
	prev, hash []byte
	agent      int64
	c          auditColumns
	linked     bool // prev is the link (stored, or filled in)
	gone       bool // deleted before its link was looked up (fillLinks)
}

// maxAnswerReads bounds how often one answer is read: a read after the
// first follows a retention that deleted some of its rows in between.
const maxAnswerReads = 4

// readAuditAnswer runs q (at most a page of rows) and hands fn each record
// in the order read. contiguous says the answer holds every row between
// its oldest and newest positions (no filter but the position) and q
// selects auditPlainSelect: a row's link is then the next older row of its
// chain in the answer, when there is one, or one lookup for the rest.
// Otherwise q selects auditAnswerSelect, links looked up (on PostgreSQL,
// the rest by fillLinks).
//
// When retention deleted a row between q and the lookup of its link
// (fillLinks marks it gone), the answer is read again: leaving the row
// out would leave a page short of its limit, or without the row past it
// that says a next page exists, while another chain's older records are
// still held (a page that ends early hides them).
func (s *db) readAuditAnswer(ctx context.Context, q string, args []any, contiguous bool, fn func(seq int64, r audit.Record) error) error {
	out, err := readWhole(func() ([]answerRow, error) { return s.readAnswerRows(ctx, q, args, contiguous) })
	if err != nil {
		return err
	}
	for i := range out {
		a := &out[i]
		r := decodeAuditBody(a.body, a.c)
		r.PrevHash, r.Hash = hashText(a.prev), hashText(a.hash)
		if a.prev == nil {
			r.PrevHash = audit.GenesisHash
		}
		if err := fn(a.seq, r); err != nil {
			return err
		}
	}
	return nil
}

// readWhole reads an answer until none of its rows is gone, at most
// maxAnswerReads times.
func readWhole(read func() ([]answerRow, error)) ([]answerRow, error) {
	for n := 1; ; n++ {
		out, err := read()
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(out, func(a answerRow) bool { return a.gone }) {
			return out, nil
		}
		if n == maxAnswerReads {
			return nil, fmt.Errorf("audit answer: retention deleted rows of it while it was read, %d times", n)
		}
	}
}

// readAnswerRows runs q and fills in each row's agent id and link.
func (s *db) readAnswerRows(ctx context.Context, q string, args []any, contiguous bool) ([]answerRow, error) {
	rows, err := s.reads.query(ctx, s.r, q, args)
	if err != nil {
		return nil, err
	}
	var out []answerRow
	err = func() error {
		defer rows.Close()
		for rows.Next() {
			var a answerRow
			id, decision, trace, source := s.dialect.auditCols()
			if err := rows.Scan(&a.seq, &a.chain, &id, &a.body, &a.prev, &a.hash, &a.agent, &a.c.action, &decision, &a.c.ts, &trace,
				&a.c.status, &a.c.reason, &source, &a.c.shadow); err != nil {
				return err
			}
			a.c.id, a.c.decision, a.c.traceID, a.c.source = id.s, decision.s, trace.s, source.s
			a.linked = len(a.prev) > 0 || (!contiguous && !s.dialect.partialAnswerLink())
			out = append(out, a)
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, err
	}
	if err := s.agentIDs(ctx, out); err != nil {
		return nil, err
	}
	if err := s.fillLinks(ctx, out, contiguous); err != nil {
		return nil, err
	}
	return out, nil
}

// agentIDs sets each row's agent id from the dictionary kept in memory,
// reading the numbers it does not hold. A number with no entry (an edited
// row) reads as no agent, which the row's hash reports.
func (s *db) agentIDs(ctx context.Context, out []answerRow) error {
	var missing []int64
	s.agentNames.mu.RLock()
	for i := range out {
		id, ok := s.agentNames.m[out[i].agent]
		// Each number once: a page's rows are mostly a few agents'.
		if !ok && !slices.Contains(missing, out[i].agent) {
			missing = append(missing, out[i].agent)
		}
		out[i].c.agentID = id
	}
	s.agentNames.mu.RUnlock()
	if len(missing) == 0 {
		return nil
	}
	found := make(map[int64]string, len(missing))
	keys := make([]any, len(missing))
	for i, n := range missing {
		keys[i] = n
	}
	if err := readAgentEntries(keys, func(k int, args []any) (*sql.Rows, error) {
		return s.reads.query(ctx, s.r, `SELECT n, agent_id FROM audit_agents WHERE n IN (`+placeholders(1, linkChunks[k])+`)`, args)
	}, func(n int64, id string) { found[n] = id }); err != nil {
		return fmt.Errorf("audit agents: %w", err)
	}
	s.agentNames.mu.Lock()
	for k, id := range found {
		s.agentNames.learn(k, id)
	}
	s.agentNames.mu.Unlock()
	for i := range out {
		if id, ok := found[out[i].agent]; ok {
			out[i].c.agentID = id
		}
	}
	return nil
}

// chunkFor is the smallest chunk size holding n, or the largest.
func chunkFor(n int) int { return linkChunks[chunkIndex(n)] }

// chunkIndex is the index in linkChunks of chunkFor(n).
func chunkIndex(n int) int {
	for i, c := range linkChunks {
		if n <= c {
			return i
		}
	}
	return len(linkChunks) - 1
}

// fillLinks sets the link of each row that stores none: the hash of the
// row before it in its chain, or, when retention deleted that row, the
// anchor retention left, or none (genesis: prev stays nil). It runs after
// the rows were read: a row retention deleted in between is marked gone
// (its link would now be an older anchor; readAuditAnswer reads the
// answer again), while for a row still held every row or
// anchor before it is as it was (retention cuts a chain's oldest rows and
// leaves the last one's hash as the anchor).
func (s *db) fillLinks(ctx context.Context, out []answerRow, contiguous bool) error {
	type key struct {
		chain string
		seq   int64
	}
	if contiguous {
		linkWithinAnswer(out)
	}
	var need []key
	idx := make(map[key][]int)
	for i := range out {
		a := &out[i]
		if a.linked {
			continue
		}
		k := key{a.chain, a.seq}
		if _, ok := idx[k]; !ok {
			need = append(need, k)
		}
		idx[k] = append(idx[k], i)
	}
	for len(need) > 0 {
		n := chunkFor(len(need))
		var vals strings.Builder
		args := make([]any, 0, 2*n)
		for i := range n {
			k := need[min(i, len(need)-1)] // padded with the last
			if i > 0 {
				vals.WriteByte(',')
			}
			vals.WriteString("(CAST($" + strconv.Itoa(2*i+1) + " AS BIGINT), CAST($" + strconv.Itoa(2*i+2) + " AS TEXT))")
			args = append(args, k.seq, k.chain)
		}
		need = need[min(n, len(need)):]
		q := `WITH x(s, c) AS (VALUES ` + vals.String() + `)
			SELECT x.s, x.c, EXISTS (SELECT 1 FROM audit h WHERE h.seq = x.s), COALESCE(
				` + s.dialect.prevHashSQL("x.c", "x.s") + `,
				(SELECT ` + s.dialect.unhex("a.last_hash") + ` FROM audit_anchors a WHERE a.chain_id = x.c AND a.last_seq < x.s ORDER BY a.last_seq DESC LIMIT 1))
			FROM x`
		if err := func() error {
			rows, err := s.reads.query(ctx, s.r, q, args)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var k key
				var held bool
				var h []byte
				if err := rows.Scan(&k.seq, &k.chain, &held, &h); err != nil {
					return err
				}
				for _, i := range idx[k] {
					out[i].prev, out[i].linked, out[i].gone = h, true, !held
				}
			}
			return rows.Err()
		}(); err != nil {
			return fmt.Errorf("audit links: %w", err)
		}
	}
	return nil
}

// linkWithinAnswer links each row that stores no link to the row of its
// chain just before it in position, when the answer holds that row.
func linkWithinAnswer(out []answerRow) {
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(out[a].seq, out[b].seq) })
	last := make(map[string]int, 1)
	for _, i := range order {
		if j, ok := last[out[i].chain]; ok && !out[i].linked {
			out[i].prev, out[i].linked = out[j].hash, true
		}
		last[out[i].chain] = i
	}
}
