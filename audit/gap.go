package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ErrHeadMoved is wrapped by a store's AppendAudit when a batch does not
// link to its chain's head: the store lost records it had committed (or,
// on PostgreSQL, another process appends under the same chain name).
var ErrHeadMoved = errors.New("the audit chain's head is not the record the batch links to")

// ErrGap is wrapped by Verify's error for a trail whose chains verify but
// which has lost records (see Gap).
var ErrGap = errors.New("the audit trail has lost records")

// Gap is records a store lost after committing them, as the writer found
// and recorded them before going on from what the store kept.
type Gap struct {
	Chain     string `json:"chain"`
	AfterSeq  int64  `json:"afterSeq"`  // the last record the store kept
	AfterHash string `json:"afterHash"` // its hash (the new segment links to it)
	LostHead  string `json:"lostHead"`  // the hash of the last record lost
	// Lost is how many records were lost; -1 when more than the writer
	// remembered (RememberRecords).
	Lost       int64     `json:"lost"`
	From       time.Time `json:"from"` // the time span of the records lost
	To         time.Time `json:"to"`
	DetectedAt time.Time `json:"detectedAt"`
}

// String describes the gap for people.
func (g Gap) String() string {
	n := fmt.Sprintf("%d records", g.Lost)
	if g.Lost < 0 {
		n = "an unknown number of records"
	}
	return fmt.Sprintf("chain %q: %s from %s to %s lost after position %d (found %s)", g.Chain, n,
		g.From.UTC().Format(time.RFC3339Nano), g.To.UTC().Format(time.RFC3339Nano), g.AfterSeq, g.DetectedAt.UTC().Format(time.RFC3339))
}

// GapStore is what a store needs to record and list gaps.
type GapStore interface {
	// RecordAuditGap records g on this handle's chain; the store sets
	// g.Chain and g.AfterSeq.
	RecordAuditGap(ctx context.Context, g Gap) error
	AuditGaps(ctx context.Context) ([]Gap, error)
	// AuditHashByID is the hash of the stored record with this id, and
	// false if there is none: a head that moved while the writer's last
	// record is still there is another writer's doing, not a loss.
	AuditHashByID(ctx context.Context, id string) (string, bool, error)
}

// stored remembers the writer's last stored records, newest last, so a
// lost tail can be measured: a ring of hashes and times.
type stored struct {
	hash [][32]byte
	ts   []int64
	next int // where the next goes
	n    int // how many are held
}

// DefaultRememberRecords is how many stored records a writer remembers.
const DefaultRememberRecords = 1 << 16

func newStored(size int) *stored {
	return &stored{hash: make([][32]byte, size), ts: make([]int64, size)}
}

func (s *stored) add(r *Record) {
	_, _ = hex.Decode(s.hash[s.next][:], []byte(r.Hash))
	s.ts[s.next] = r.Timestamp.UnixNano()
	s.next = (s.next + 1) % len(s.hash)
	s.n = min(s.n+1, len(s.hash))
}

// after measures what came after the record with hash h: how many records
// and their time span, and k, how many to drop once the gap is recorded
// (-1: h is not remembered, so lost is -1 and everything goes).
func (s *stored) after(h string) (lost int64, from, to time.Time, k int) {
	var want [32]byte
	_, _ = hex.Decode(want[:], []byte(h))
	if s.n == 0 {
		return -1, time.Time{}, time.Time{}, -1
	}
	newest := (s.next - 1 + len(s.hash)) % len(s.hash)
	to = time.Unix(0, s.ts[newest])
	for k := 0; k < s.n; k++ {
		i := (newest - k + len(s.hash)) % len(s.hash)
		if s.hash[i] == want {
			if k == 0 {
				return 0, to, to, 0
			}
			return int64(k), time.Unix(0, s.ts[(i+1)%len(s.hash)]), to, k
		}
	}
	oldest := (s.next - s.n + len(s.hash)) % len(s.hash)
	return -1, time.Unix(0, s.ts[oldest]), to, -1
}

// drop forgets the newest k records (all of them if k < 0).
func (s *stored) drop(k int) {
	if k < 0 {
		s.n = 0
		return
	}
	s.next = (s.next - k + len(s.hash)) % len(s.hash)
	s.n -= k
}

// gap measures and records a lost tail: the store's chain ends at head,
// the writer had stored up to storedHead. It returns the gap recorded.
func (w *Writer) gap(ctx context.Context, head string) (Gap, error) {
	lost, from, to, k := w.recent.after(head)
	g := Gap{AfterHash: head, LostHead: w.storedHead, Lost: lost, From: from, To: to, DetectedAt: time.Now()}
	gs, ok := w.store.(GapStore)
	if !ok {
		return g, fmt.Errorf("the store lost records and cannot record the gap: %w", ErrHeadMoved)
	}
	if err := gs.RecordAuditGap(ctx, g); err != nil {
		return g, fmt.Errorf("recording an audit gap: %w", err)
	}
	w.recent.drop(k)
	w.storedHead, w.storedID = head, ""
	w.log.Error("the audit store lost records it had committed; a new chain segment goes on from what it kept, and the gap is recorded (audit verify reports it)",
		"lost", lost, "from", from, "to", to, "after_hash", head)
	if w.cfg.OnGap != nil {
		w.cfg.OnGap(g)
	}
	return g, nil
}

// lostLast reports whether the store lost the last record the writer
// stored, its chain ending at head.
func (w *Writer) lostLast(ctx context.Context, head string) (bool, error) {
	if head == w.storedHead {
		return false, nil
	}
	gs, ok := w.store.(GapStore)
	if !ok || w.storedID == "" {
		return true, nil
	}
	h, found, err := gs.AuditHashByID(ctx, w.storedID)
	if err != nil {
		return false, fmt.Errorf("looking for the last record stored: %w", err)
	}
	return !found || h != w.storedHead, nil
}

// healGap handles a batch that does not link to the store's head (the
// flusher's, or Close's, who own inflight): if the store lost records the
// writer had stored, it records the gap and re-seals every queued record
// onto the store's head. It returns nil when the queue may be written
// again.
func (w *Writer) healGap(ctx context.Context, cause error) error {
	head, err := w.store.LastAuditHash(ctx)
	if err != nil {
		return fmt.Errorf("%w (reading the chain's head: %w)", cause, err)
	}
	if lost, err := w.lostLast(ctx, head); err != nil || !lost {
		return errors.Join(cause, err) // the store has all the writer stored: not a loss
	}
	if _, err := w.gap(ctx, head); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := head
	for _, q := range [][]Record{w.inflight, w.pending} {
		for i := range q {
			q[i].link(prev, q[i].canon)
			prev = q[i].Hash
		}
	}
	w.prev = prev
	w.journalResealed()
	return nil
}
