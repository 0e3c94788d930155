package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// A Writer answers decisions before their records are stored (group
// commit) and refuses new ones once its store falls AUDIT_MAX_LAG_MS
// behind. The records queued when the store stopped are then neither
// stored nor, on their own, durable: a crash later in the outage would
// lose them although they were answered long before. So a lagging writer
// copies what it has not stored to a journal, a local file in DATA_DIR,
// within three quarters of MaxLag of each record's decision, and the next
// start stores the journal's records before deciding anything.

// JournalFile is the journal's name in DATA_DIR.
const JournalFile = "audit-journal.ndjson"

const journalFormat = "meshguard.audit.journal/v1"

// ErrJournal is wrapped by a journal that cannot be written or replayed.
var ErrJournal = errors.New("audit journal")

// Journal is the file a Writer keeps its unstored records in while its
// store lags (WriterConfig.Journal). Chain names the chain the records
// belong to (on PostgreSQL, the store handle's).
type Journal struct {
	path, chain string

	mu    sync.Mutex // held across a whole append or clear; taken before Writer.mu
	f     *os.File
	dirty bool // the file holds records
}

// NewJournal returns the journal at path for chain; nothing is written
// until a writer lags.
func NewJournal(path, chain string) *Journal { return &Journal{path: path, chain: chain} }

type journalHeader struct {
	Format string `json:"journal"`
	Chain  string `json:"chain"`
}

type journalLine struct {
	PrevHash string `json:"prevHash"`
	Hash     string `json:"hash"`
	Record   string `json:"record"` // the canonical encoding the hash covers, as a string: byte for byte
}

// append writes rs and syncs them to disk (j.mu held).
func (j *Journal) append(rs []Record) error {
	if j.f == nil {
		f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrJournal, err)
		}
		j.f = f
	}
	var b bytes.Buffer
	if !j.dirty {
		if err := j.f.Truncate(0); err != nil {
			return fmt.Errorf("%w: %w", ErrJournal, err)
		}
		if _, err := j.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%w: %w", ErrJournal, err)
		}
		h, _ := json.Marshal(journalHeader{Format: journalFormat, Chain: j.chain})
		b.Write(append(h, '\n'))
	}
	for i := range rs {
		body, err := rs[i].Canonical()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrJournal, err)
		}
		l, _ := json.Marshal(journalLine{PrevHash: rs[i].PrevHash, Hash: rs[i].Hash, Record: string(body)})
		b.Write(append(l, '\n'))
	}
	if _, err := j.f.Write(b.Bytes()); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	if !j.dirty {
		j.dirty = true
		syncDir(filepath.Dir(j.path)) // the file's name, too, must survive
	}
	return nil
}

// clear empties the journal once its records are stored (j.mu held).
func (j *Journal) clear() error {
	if !j.dirty {
		return nil
	}
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	j.dirty = false
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// journaler copies, every MaxLag/4 (or 50 ms, if sooner), the queued records not yet journaled
// to the journal while the store lags (the oldest queued record is older
// than MaxLag/2, or the last write failed); so each record is on disk at
// most about 3/4 MaxLag after its decision, before Write refuses.
func (w *Writer) journaler(stop <-chan struct{}) {
	t := time.NewTicker(max(min(w.cfg.MaxLag/4, 50*time.Millisecond), time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		_ = w.spill(false) // logged; Write refuses meanwhile
	}
}

// spill journals the queued records not journaled yet: all of them if
// force (Close gives up), else only while the store lags.
func (w *Writer) spill(force bool) error {
	j := w.cfg.Journal
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Since(w.epoch)
	w.mu.Lock()
	n := len(w.inflight) + len(w.pending)
	lagging := n > 0 && (w.lastErr != nil || now-w.oldestQueued() > w.cfg.MaxLag/2)
	if w.jn >= n || (!force && !lagging) {
		w.mu.Unlock()
		return nil
	}
	rs := make([]Record, 0, n-w.jn)
	for i := w.jn; i < n; i++ {
		if i < len(w.inflight) {
			rs = append(rs, w.inflight[i])
		} else {
			rs = append(rs, w.pending[i-len(w.inflight)])
		}
	}
	w.jn = n
	w.mu.Unlock()
	err := j.append(rs)
	w.mu.Lock()
	w.jerr = err
	w.mu.Unlock()
	if err != nil {
		w.log.Error("the audit store lags and the journal cannot be written: decisions are refused", "error", err)
	}
	return err
}

// oldestQueued is when the oldest unstored record was queued (w.mu held;
// the queue is not empty).
func (w *Writer) oldestQueued() time.Duration {
	if len(w.inflight) > 0 {
		return w.inflight[0].queued
	}
	return w.pending[0].queued
}

// journalStored notes that the first n queued records were stored, and
// empties the journal once nothing it holds is still queued.
func (w *Writer) journalStored(n int) {
	j := w.cfg.Journal
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	w.mu.Lock()
	w.jn = max(0, w.jn-n)
	empty := w.jn == 0
	w.mu.Unlock()
	if empty {
		if err := j.clear(); err != nil {
			w.log.Error("the audit journal cannot be emptied; its records are stored", "error", err)
		}
	}
}

// journalRewrite journals the queue afresh after a record was
// dead-lettered: the file held that record, which the store refuses, and
// the old hashes of the records after it, which no longer link, so a
// replay would refuse to start. It empties the file and, if it held
// anything, writes the queue as it is now (the store still lags).
func (w *Writer) journalRewrite() {
	j := w.cfg.Journal
	if j == nil {
		return
	}
	j.mu.Lock()
	w.mu.Lock()
	held := w.jn > 0 || j.dirty
	w.jn = 0
	w.mu.Unlock()
	var err error
	if held {
		err = j.clear()
	}
	j.mu.Unlock()
	if err != nil {
		w.mu.Lock()
		w.jerr = err
		w.mu.Unlock()
		w.log.Error("the audit journal cannot be emptied after a dead letter: decisions are refused", "error", err)
		return
	}
	if held {
		_ = w.spill(true) // logged; Write refuses meanwhile
	}
}

// journalResealed (w.mu held) forgets what was journaled: the queue was
// re-sealed after a gap, so its records are journaled again with their new
// hashes (replay skips the stale copies, which no longer link).
func (w *Writer) journalResealed() { w.jn = 0 }

// ReplayJournal stores the records of the journal at path that its chain
// does not hold yet, then removes the file; open returns the store of a
// chain (and a function to release it). A journal whose records no longer
// link to the chain is moved aside (path + ".unlinked-<unix time>") and
// reported as an error wrapping ErrJournal: its records are kept for an
// operator, but not stored. It returns how many records it stored.
func ReplayJournal(ctx context.Context, path string, open func(ctx context.Context, chain string) (Store, func(), error), log *slog.Logger) (int, error) {
	chain, rs, err := readJournal(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(rs) > 0 {
		s, release, err := open(ctx, chain)
		if err != nil {
			return 0, fmt.Errorf("%w: opening chain %q: %w", ErrJournal, chain, err)
		}
		defer release()
		head, err := s.LastAuditHash(ctx)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrJournal, err)
		}
		start, done := -1, false
		for i := range rs {
			if rs[i].PrevHash == head {
				start = i
				break
			}
			done = done || rs[i].Hash == head
		}
		if start < 0 && !done {
			aside := path + ".unlinked-" + strconv.FormatInt(time.Now().Unix(), 10)
			if err := os.Rename(path, aside); err != nil {
				return 0, fmt.Errorf("%w: %w", ErrJournal, err)
			}
			return 0, fmt.Errorf("%w: its %d records do not link to chain %q's head %.12s…; kept in %s", ErrJournal, len(rs), chain, head, aside)
		}
		n := 0
		if start >= 0 {
			run := rs[start:]
			for i := 1; i < len(run); i++ {
				if run[i].PrevHash != run[i-1].Hash {
					run = run[:i] // stale copies of records re-sealed after a gap
					break
				}
			}
			for len(run) > 0 {
				b := run[:min(len(run), DefaultMaxBatch)]
				if err := s.AppendAudit(ctx, b); err != nil {
					return n, fmt.Errorf("%w: storing its records: %w", ErrJournal, err)
				}
				n += len(b)
				run = run[len(b):]
			}
		}
		if log != nil && n > 0 {
			log.Warn("stored the audit records a stopped process had journaled while its store lagged", "records", n, "chain", chain)
		}
		if err := os.Remove(path); err != nil {
			return n, fmt.Errorf("%w: %w", ErrJournal, err)
		}
		syncDir(filepath.Dir(path))
		return n, nil
	}
	if err := os.Remove(path); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	return 0, nil
}

// maxJournalLine bounds one journal line (a record is a few KiB at most).
const maxJournalLine = 16 << 20

// readJournal reads a journal's chain and records. A last line cut off by
// a crash mid-write is ignored (its record was never synced, so never
// counted as journaled); any other bad line is an error.
func readJournal(path string) (string, []Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxJournalLine)
	var h journalHeader
	var rs []Record
	var bad error
	for line := 1; sc.Scan(); line++ {
		if bad != nil {
			return "", nil, bad // a bad line before the last
		}
		if line == 1 {
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format != journalFormat {
				return "", nil, fmt.Errorf("%w: %s: not a MeshGuard audit journal", ErrJournal, path)
			}
			continue
		}
		var l journalLine
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || json.Unmarshal([]byte(l.Record), &r) != nil || chainHash(l.PrevHash, []byte(l.Record)) != l.Hash {
			bad = fmt.Errorf("%w: %s: line %d is not a sealed record", ErrJournal, path, line)
			continue
		}
		r.PrevHash, r.Hash, r.canon = l.PrevHash, l.Hash, []byte(l.Record)
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		return "", nil, fmt.Errorf("%w: %s: %w", ErrJournal, path, err)
	}
	if h.Format == "" {
		return "", nil, nil // empty: nothing was journaled
	}
	return h.Chain, rs, nil
}
