package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Store is where the writer puts records (store.SQLite, store.Postgres).
// A store shared by several writers gives each its own chain: the hash
// LastAuditHash returns is the end of the chain AppendAudit extends.
type Store interface {
	// AppendAudit stores sealed records after those stored, in order, all
	// or none.
	AppendAudit(ctx context.Context, rs []Record) error
	// LastAuditHash is the hash the next record links to.
	LastAuditHash(ctx context.Context) (string, error)
}

// WriterConfig configures a Writer.
type WriterConfig struct {
	// FlushInterval is how long records may wait to be written together
	// (AUDIT_FLUSH_MS). Zero makes every Write wait until its record is
	// stored.
	FlushInterval time.Duration
	// QueueSize bounds the records waiting (DefaultQueueSize if zero). A
	// full queue makes Write wait — backpressure, never a dropped record.
	QueueSize int
	// MaxBatch bounds one store write (DefaultMaxBatch if zero).
	MaxBatch int
	// MaxLag bounds how long a queued record may wait unstored
	// (AUDIT_MAX_LAG_MS; more than FlushInterval; if zero, DefaultMaxLag or
	// twice FlushInterval, whichever is longer).
	// While the oldest queued record is older, or the last store write
	// failed, Write refuses new records (ErrUnavailable): a crash then
	// loses at most MaxLag of decisions, never a long outage's worth.
	MaxLag time.Duration
	// WriteTimeout bounds one store write (DefaultWriteTimeout if zero): a
	// write that hangs (a lock, a dead connection) is cancelled and
	// retried rather than holding the writer forever.
	WriteTimeout time.Duration
	// RetryBackoff is the first wait after a failed store write; it doubles
	// up to MaxBackoff (defaults 50 ms and 5 s).
	RetryBackoff, MaxBackoff time.Duration
	Logger                   *slog.Logger
	// OnGap, if set, is called when the store is found to have lost
	// records the writer had stored (a critical alert, a metric).
	OnGap func(Gap)
	// RememberRecords is how many stored records the writer remembers to
	// measure such a loss (DefaultRememberRecords if zero).
	RememberRecords int
	// OnStored, if set, is called with the number of records each
	// successful store write kept (the meshguard_audit_entries_total
	// metric).
	OnStored func(n int)
	// Journal, if set, is where records wait on disk while the store lags
	// (see JournalFile), so a crash in a long outage loses none answered
	// more than MaxLag before it. Unused when FlushInterval is zero.
	Journal *Journal
	// RefusedAttempts is how many times a record the store refuses as
	// data (ErrRecordRefused) is offered alone before it is dead-lettered
	// (DefaultRefusedAttempts if zero).
	RefusedAttempts int
	// OnDeadLetter, if set, is called for each record dead-lettered (a
	// critical alert, a metric).
	OnDeadLetter func(DeadLetter)
	// Arguments says whether records of agent-protocol calls carry the
	// call's arguments (AUDIT_ARGUMENTS, AUDIT_REDACT); the digest is
	// always recorded.
	Arguments ArgumentsConfig
}

// ArgumentsConfig is what a Writer records of a call's arguments besides
// their digest.
type ArgumentsConfig struct {
	// Record: keep the arguments themselves (off by default).
	Record bool
	// Redact names the members whose values are replaced by Redacted, at
	// any depth (DefaultRedact() if nil).
	Redact []string
}

// DefaultRedact is the members redacted from recorded arguments unless
// AUDIT_REDACT says otherwise.
func DefaultRedact() []string {
	return []string{"password", "passwd", "secret", "client_secret", "token", "access_token", "refresh_token",
		"api_key", "apikey", "authorization", "cookie", "private_key", "credentials"}
}

func (ac ArgumentsConfig) redactSet() map[string]bool {
	names := ac.Redact
	if names == nil {
		names = DefaultRedact()
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[redactKey(n)] = true
	}
	return set
}

// Writer defaults.
const (
	DefaultQueueSize    = 65536
	DefaultMaxBatch     = 1024
	DefaultMaxLag       = 500 * time.Millisecond
	DefaultWriteTimeout = 10 * time.Second
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("audit writer closed")

// ErrUnavailable is returned by Write while the store is failing or
// falling behind: the records already queued are kept and retried, but no
// new decision is given that a crash could lose — MeshGuard fails
// closed until the store has caught up again.
var ErrUnavailable = errors.New("audit store unavailable")

// errLagging says the store accepts no write in time: a write hangs, or a
// backlog is older than MaxLag.
var errLagging = errors.New("the oldest queued record is unstored for longer than the maximum lag")

// Writer seals records into the hash chain in the order they arrive and
// writes them in batches (group commit). Sealing happens only once a record
// has a place in the queue, so a Write that gives up (its context ends
// while the queue is full) leaves the chain untouched. A store that fails
// is retried with backoff, records kept in order; nothing is dropped.
type Writer struct {
	cfg   WriterConfig
	store Store
	log   *slog.Logger

	mu      sync.Mutex
	space   *sync.Cond // signalled when the queue shrinks or the writer closes
	prev    string     // hash of the last sealed record
	pending []Record   // sealed, queued after inflight, in chain order
	// inflight is what the flusher took from pending and is storing, batch
	// by batch; swapping the two slices instead of copying the remainder
	// keeps a long queue from costing its length at every batch.
	inflight []Record
	taken    []Record // the whole slice last taken into inflight, for reuse
	spare    []Record // an emptied taken, to become the next pending
	closed   bool
	lastErr  error
	epoch    time.Time // queued times are offsets from it (monotonic)

	// storedHead is the hash of the last record a store write kept, and
	// recent the last records stored: both the flusher's (or, after it,
	// Close's; with FlushInterval zero, Write's under mu).
	storedHead string
	storedID   string // the id of that record ("" before the first)
	recent     *stored
	// isolate is how many records at the head of inflight are written in
	// batches of at most split (a batch the store refused as data, halved
	// until the refused record is alone), and refusals how many times the
	// head record was refused alone: all the flusher's.
	isolate, split, refusals int

	wake chan struct{} // nudges the flusher
	done chan struct{} // closed when the flusher has exited
	stop chan struct{} // closed by Close: the journaler stops

	redact map[string]bool // the argument names redacted (WriterConfig.Arguments)

	jn   int   // how many of the queued records (inflight, then pending) are journaled
	jerr error // the journal's last write failed
}

// NewWriter reads where the chain ends and, unless FlushInterval is zero,
// starts the background flusher.
func NewWriter(ctx context.Context, s Store, cfg WriterConfig) (*Writer, error) {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = max(DefaultMaxLag, 2*cfg.FlushInterval)
	}
	if cfg.RememberRecords <= 0 {
		cfg.RememberRecords = DefaultRememberRecords
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.RefusedAttempts <= 0 {
		cfg.RefusedAttempts = DefaultRefusedAttempts
	}
	if cfg.FlushInterval > 0 && cfg.MaxLag <= cfg.FlushInterval {
		return nil, fmt.Errorf("audit writer: the maximum lag (%v) must be longer than the flush interval (%v)", cfg.MaxLag, cfg.FlushInterval)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prev, err := s.LastAuditHash(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit writer: %w", err)
	}
	w := &Writer{cfg: cfg, store: s, log: log, prev: prev, epoch: time.Now(), storedHead: prev, recent: newStored(cfg.RememberRecords),
		wake: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{})}
	w.space = sync.NewCond(&w.mu)
	w.redact = cfg.Arguments.redactSet()
	if cfg.FlushInterval > 0 {
		go w.flusher()
		if cfg.Journal != nil {
			go w.journaler(w.stop)
		}
	} else {
		close(w.done)
	}
	return w, nil
}

// Write seals r into the chain and queues it; with FlushInterval zero it
// returns once r is stored. It waits while the queue is full, until ctx
// ends (then r is not written and the chain is unchanged).
func (w *Writer) Write(ctx context.Context, r Record) error {
	if r.Call != nil {
		// A copy: the caller's Call is not the writer's to change.
		c := *r.Call
		if err := c.finish(w.cfg.Arguments.Record, w.redact); err != nil {
			return fmt.Errorf("audit writer: record %s: %w", r.ID, err)
		}
		r.Call = &c
	}
	// Also without a call: POST /v1/check states a call's arguments in
	// its context.
	r.Context = redactContext(r.Context, w.redact)
	// Encoding is the costly part of sealing and needs no order: it runs
	// here, in parallel across callers; only the hash link is taken under
	// the lock.
	body, err := encodeForSeal(&r)
	if err != nil {
		return fmt.Errorf("audit writer: %w", err)
	}
	if w.cfg.FlushInterval == 0 {
		return w.writeSync(ctx, r, body)
	}
	now := time.Since(w.epoch)
	w.mu.Lock()
	for {
		if w.closed {
			w.mu.Unlock()
			return ErrClosed
		}
		// Checked before waiting for room: a store that is down must fail
		// decisions at once, not after they waited for a full queue.
		if err := w.unavailable(now); err != nil {
			w.mu.Unlock()
			return err
		}
		if len(w.pending)+len(w.inflight) < w.cfg.QueueSize {
			break
		}
		if err := w.waitForSpace(ctx); err != nil {
			w.mu.Unlock()
			return err
		}
		now = time.Since(w.epoch)
	}
	r.queued = now
	r.linkBuf(w.prev, body)
	w.prev = r.Hash
	w.pending = append(w.pending, r)
	full := len(w.pending) >= w.cfg.MaxBatch
	w.mu.Unlock()
	if full {
		w.nudge()
	}
	return nil
}

// writeSync stores one record before returning (body is encodeForSeal's). Holding the lock across
// the store write keeps sealing and storing in one order.
func (w *Writer) writeSync(ctx context.Context, r Record, body []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	r.linkBuf(w.prev, body)
	err := w.store.AppendAudit(ctx, []Record{r})
	for attempts := 1; errors.Is(err, ErrRecordRefused); attempts++ {
		if attempts == w.cfg.RefusedAttempts {
			// Kept outside the chain, which goes on from w.prev.
			if _, err := w.deadLetter(ctx, &r, err, attempts); err != nil {
				return fmt.Errorf("audit writer: %w", err)
			}
			return nil
		}
		err = w.store.AppendAudit(ctx, []Record{r})
	}
	if errors.Is(err, ErrHeadMoved) {
		// The store lost records: record the gap, go on from its head.
		head, herr := w.store.LastAuditHash(ctx)
		lost := false
		if herr == nil {
			lost, herr = w.lostLast(ctx, head)
		}
		if lost {
			_, herr = w.gap(ctx, head)
		}
		if lost && herr == nil {
			r.linkBuf(head, body)
			err = w.store.AppendAudit(ctx, []Record{r})
		} else if herr != nil {
			err = errors.Join(err, herr)
		}
	}
	if err != nil {
		return fmt.Errorf("audit writer: %w", err)
	}
	w.recent.add(&r)
	w.prev, w.storedHead, w.storedID = r.Hash, r.Hash, r.ID
	if w.cfg.OnStored != nil {
		w.cfg.OnStored(1)
	}
	return nil
}

// unavailable (w.mu held) says why no record may be queued at now: the
// last store write failed, or the oldest record queued has waited longer
// than MaxLag (the store hangs or cannot keep up).
func (w *Writer) unavailable(now time.Duration) error {
	if w.jerr != nil { // first: records already given may be lost
		return fmt.Errorf("%w: %w", ErrUnavailable, w.jerr)
	}
	if w.lastErr != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, w.lastErr)
	}
	oldest := w.inflight
	if len(oldest) == 0 {
		oldest = w.pending
	}
	if len(oldest) > 0 {
		if waited := now - oldest[0].queued; waited > w.cfg.MaxLag {
			return fmt.Errorf("%w: %w (%d records waiting, the oldest for %v)", ErrUnavailable, errLagging,
				len(w.pending)+len(w.inflight), waited.Round(time.Millisecond))
		}
	}
	return nil
}

// waitForSpace waits on w.space (w.mu held) until signalled or ctx ends.
func (w *Writer) waitForSpace(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit writer: queue full: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.space.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.space.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit writer: queue full: %w", err)
	}
	return nil
}

func (w *Writer) nudge() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// flusher writes the queue every FlushInterval, or sooner when a batch is
// full, until Close.
func (w *Writer) flusher() {
	defer close(w.done)
	t := time.NewTicker(w.cfg.FlushInterval)
	defer t.Stop()
	backoff := w.cfg.RetryBackoff
	for {
		select {
		case <-t.C:
		case <-w.wake:
		}
		for {
			err := w.flushOnce(context.Background())
			closing := w.isClosed()
			switch {
			case err != nil && closing:
				return // Close retries, within its own deadline
			case err != nil:
				w.log.Error("audit write failed; records are kept and retried", "error", err, "queued", w.Pending())
				time.Sleep(backoff)
				backoff = min(2*backoff, w.cfg.MaxBackoff)
				continue
			}
			backoff = w.cfg.RetryBackoff
			if closing && w.Pending() == 0 {
				return
			}
			// A backlog (after a slow or failed write) is written at once,
			// batch after batch, not one batch a tick: no record may wait
			// much longer than FlushInterval. Below a full batch, the
			// next tick gathers more.
			if !closing && !w.backlog() {
				break
			}
		}
	}
}

// backlog reports whether a full batch or more is waiting.
func (w *Writer) backlog() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inflight) > 0 || len(w.pending) >= w.cfg.MaxBatch
}

func (w *Writer) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// flushOnce writes up to MaxBatch queued records. The store call runs
// without the lock, so Writes go on queueing meanwhile; only this goroutine
// (or Close, after it has exited) touches inflight.
func (w *Writer) flushOnce(ctx context.Context) error {
	w.mu.Lock()
	if len(w.inflight) == 0 && len(w.pending) > 0 {
		w.inflight, w.taken = w.pending, w.pending
		w.pending, w.spare = w.spare[:0], nil
	}
	n := min(len(w.inflight), w.cfg.MaxBatch)
	if w.isolate > 0 {
		n = min(n, w.isolate, max(w.split, 1))
	}
	batch := w.inflight[:n:n]
	w.mu.Unlock()
	if n == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
	err := w.store.AppendAudit(wctx, batch)
	if errors.Is(err, ErrHeadMoved) {
		err = w.healGap(wctx, err)
		cancel()
		if err == nil {
			return nil // re-sealed: the next round writes it
		}
	}
	if errors.Is(err, ErrRecordRefused) {
		// The store works but will not take a record: not an outage, so
		// decisions go on (MaxLag still bounds the wait).
		err = w.refused(wctx, n, err)
		cancel()
		return err
	}
	cancel()
	if err != nil {
		w.mu.Lock()
		w.lastErr = err
		w.mu.Unlock()
		return err
	}
	w.isolate, w.refusals = max(w.isolate-n, 0), 0
	for i := range batch {
		w.recent.add(&batch[i])
	}
	w.storedHead, w.storedID = batch[n-1].Hash, batch[n-1].ID
	w.mu.Lock()
	clear(batch) // let the records' strings go
	w.inflight = w.inflight[n:]
	if len(w.inflight) == 0 {
		w.spare, w.taken = w.taken[:0], nil
	}
	w.lastErr = nil
	w.space.Broadcast()
	w.mu.Unlock()
	w.journalStored(n)
	if w.cfg.OnStored != nil {
		w.cfg.OnStored(n)
	}
	return nil
}

// Pending is the number of records queued and not yet stored (the
// meshguard_audit_queue_depth metric).
func (w *Writer) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) + len(w.inflight)
}

// Err says why Write refuses records (the last store write failed, or the
// store has fallen more than MaxLag behind); nil while it takes them.
func (w *Writer) Err() error {
	now := time.Since(w.epoch)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.unavailable(now)
}

// Close stops taking records and writes everything queued, retrying until
// ctx ends; it returns an error if records are left unwritten.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.space.Broadcast()
	w.mu.Unlock()
	close(w.stop)
	w.nudge()
	// Only one goroutine may remove records: wait for the flusher to stop
	// before flushing here.
	select {
	case <-w.done:
	case <-ctx.Done():
		return w.giveUp(ctx.Err())
	}
	backoff := w.cfg.RetryBackoff
	for w.Pending() > 0 {
		if err := w.flushOnce(ctx); err != nil {
			select {
			case <-ctx.Done():
				return w.giveUp(err)
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, w.cfg.MaxBackoff)
		}
	}
	return nil
}

// giveUp is Close's error when records are left unstored: journaled
// first, if there is a journal, so the next start stores them.
// Stopped is closed once the background flusher has exited. After a
// Close that gave up, a write the flusher had in flight (blocked on a
// lock) may still complete until then: replay a journal in the same
// process only after it.
func (w *Writer) Stopped() <-chan struct{} { return w.done }

func (w *Writer) giveUp(err error) error {
	if w.cfg.Journal != nil && w.cfg.FlushInterval > 0 {
		if w.spill(true) == nil {
			return fmt.Errorf("audit writer: %d records not written (journaled for the next start): %w", w.Pending(), err)
		}
	}
	return fmt.Errorf("audit writer: %d records not written: %w", w.Pending(), err)
}
