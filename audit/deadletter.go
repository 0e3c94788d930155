package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrRecordRefused is wrapped by a store's AppendAudit when the store
// refuses a record as data (PostgreSQL's SQLSTATE classes 22 and 23,
// SQLite's constraint, type and size errors on the audit insert): unlike a
// store that is down, retrying will not help. The writer then isolates the
// record from its batch and, after DefaultRefusedAttempts, dead-letters it.
var ErrRecordRefused = errors.New("the audit store refuses the record as data")

// ErrDeadLettered is wrapped by Verify's error for a trail whose chains
// verify but which has records the store refused (see DeadLetter).
var ErrDeadLettered = errors.New("the audit trail has records the store refused (dead letters)")

// DefaultRefusedAttempts is how many times a record, alone, is offered to a
// store that refuses it as data before it is dead-lettered.
const DefaultRefusedAttempts = 3

// MaxDeadLetterError bounds the store error kept with a dead letter.
const MaxDeadLetterError = 1024

// DeadLetter is a record the store refused as data, kept outside the hash
// chain: the chain goes on from the record before it.
type DeadLetter struct {
	Chain     string    `json:"chain"`
	ID        string    `json:"id"`        // the record's id
	Timestamp time.Time `json:"timestamp"` // the record's time
	AfterHash string    `json:"afterHash"` // the hash it would have linked to
	// Record is the record's canonical JSON or, when the store refused
	// that too (Escaped), its ASCII-quoted form, cut at MaxDeadLetterRecord.
	Record   string    `json:"record"`
	Escaped  bool      `json:"escaped,omitempty"`
	Error    string    `json:"error"` // the store's refusal
	Attempts int       `json:"attempts"`
	DeadAt   time.Time `json:"deadAt"`
}

// MaxDeadLetterRecord bounds an escaped dead letter's record.
const MaxDeadLetterRecord = 64 << 10

// DeadLetterSummary is what Verify reports of the dead letters.
type DeadLetterSummary struct {
	Count int64     `json:"count"`
	IDs   []string  `json:"ids"` // the first MaxSummaryIDs, oldest first
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
}

// MaxSummaryIDs bounds DeadLetterSummary.IDs.
const MaxSummaryIDs = 100

// String describes the dead letters for people.
func (s DeadLetterSummary) String() string {
	ids := strings.Join(s.IDs, ", ")
	if int64(len(s.IDs)) < s.Count {
		ids += ", …"
	}
	return fmt.Sprintf("%d record(s) from %s to %s refused by the store and dead-lettered (not in the chain): %s", s.Count,
		s.From.UTC().Format(time.RFC3339Nano), s.To.UTC().Format(time.RFC3339Nano), ids)
}

// DeadLetterStore is what a store needs to keep and list dead letters.
type DeadLetterStore interface {
	// DeadLetterAudit keeps d on this handle's chain (the store sets
	// d.Chain, and escapes d.Record if it refuses it as it is).
	DeadLetterAudit(ctx context.Context, d DeadLetter) error
	// AuditDeadLetterSummary counts every dead letter.
	AuditDeadLetterSummary(ctx context.Context) (DeadLetterSummary, error)
}

// deadLetter keeps r, which the store refused as data attempts times, out
// of the chain. The caller removes it from the queue and re-seals what
// follows onto r.PrevHash.
func (w *Writer) deadLetter(ctx context.Context, r *Record, cause error, attempts int) (DeadLetter, error) {
	body, err := r.Canonical()
	if err != nil {
		return DeadLetter{}, err
	}
	msg := cause.Error()
	if len(msg) > MaxDeadLetterError {
		msg = strings.ToValidUTF8(msg[:MaxDeadLetterError], "") + "…"
	}
	d := DeadLetter{ID: r.ID, Timestamp: r.Timestamp, AfterHash: r.PrevHash, Record: string(body), Error: msg,
		Attempts: attempts, DeadAt: time.Now()}
	ds, ok := w.store.(DeadLetterStore)
	if !ok {
		return d, fmt.Errorf("the store refuses record %s as data and cannot keep dead letters: %w", r.ID, cause)
	}
	if err := ds.DeadLetterAudit(ctx, d); err != nil {
		return d, fmt.Errorf("dead-lettering audit record %s: %w", r.ID, err)
	}
	w.log.Error("the audit store refused a record as data; it is kept as a dead letter, outside the hash chain, which goes on without it (audit verify reports it)",
		"id", r.ID, "attempts", attempts, "error", msg)
	if w.cfg.OnDeadLetter != nil {
		w.cfg.OnDeadLetter(d)
	}
	return d, nil
}

// dropHead (the flusher's, or Close's) removes the dead-lettered record at
// the head of inflight and re-seals every queued record after it onto the
// hash it linked to.
func (w *Writer) dropHead() {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := w.inflight[0].PrevHash
	w.inflight[0] = Record{}
	w.inflight = w.inflight[1:]
	for _, q := range [][]Record{w.inflight, w.pending} {
		for i := range q {
			q[i].link(prev, q[i].canon)
			prev = q[i].Hash
		}
	}
	w.prev = prev
	if len(w.inflight) == 0 {
		w.spare, w.taken = w.taken[:0], nil
	}
	w.space.Broadcast()
}

// refused handles a batch of n records the store refused as data (the
// flusher's, or Close's): a batch of several is written again in halves,
// a refused half halved again, so the good ones are stored and chained
// and the refused one is found in about 2·log2(n) writes (one record at
// a time, a batch of 1,024 with one refused record took 1,024
// transactions, which held every record queued behind it past MaxLag); a
// record refused alone is retried up to RefusedAttempts times, then
// dead-lettered, and the rest of the batch written whole again. It
// returns nil when the queue may be written again at once.
func (w *Writer) refused(ctx context.Context, n int, cause error) error {
	if n > 1 {
		if w.isolate == 0 {
			w.isolate = n
			w.log.Warn("the audit store refused a batch as data; writing it again in halves to find the refused record", "records", n, "error", cause)
		}
		w.split = n / 2
		return nil
	}
	w.refusals++
	if w.refusals < w.cfg.RefusedAttempts {
		return cause
	}
	if _, err := w.deadLetter(ctx, &w.inflight[0], cause, w.refusals); err != nil {
		return err
	}
	w.dropHead()
	w.journalRewrite()
	w.refusals = 0
	w.isolate = max(w.isolate-1, 0)
	w.split = w.isolate // the rest at once: halved again if refused
	return nil
}
