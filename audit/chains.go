package audit

import (
	"context"
	"errors"
	"fmt"
)

// A trail is one hash chain (SQLite: one writer) or several (PostgreSQL:
// one per writer, since replicas appending to one chain would have to
// serialize every batch across the network). Each chain starts at
// GenesisHash and is verified on its own; together they are the trail.

// ChainHead is where one chain ends, as its store records it.
type ChainHead struct {
	ID      string // the chain's name ("" for a store's only chain)
	Head    string // the hash of its last record
	Seq     int64  // the position of its last record in the store
	Records int64  // how many records it holds
	// Anchor is where its verification starts: GenesisHash, or the hash
	// of the last record retention deleted from it (at AnchorSeq).
	Anchor    string
	AnchorSeq int64
}

// Chains is a trail as Verify reads it (store.SQLite, store.Postgres).
type Chains interface {
	AuditChains(ctx context.Context) ([]ChainHead, error)
	// ScanAuditChainAfter calls fn for the records of one chain after
	// position after (0: all), in order, with their positions.
	ScanAuditChainAfter(ctx context.Context, id string, after int64, fn func(seq int64, r Record) error) error
	// AuditRecordHash is the hash of the record at position seq of a
	// chain, and false if there is none.
	AuditRecordHash(ctx context.Context, id string, seq int64) (string, bool, error)
}

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Checkpoint, if set, is a verified signed head: each chain it lists
	// is checked to still hold the record it signed, and verified from
	// there instead of from its start (incremental verification).
	Checkpoint *Checkpoint
	// Progress, if set, is called with the number of records verified so
	// far, every ProgressEvery records (default 100,000).
	Progress      func(verified int64)
	ProgressEvery int64
}

// Report is what Verify found.
type Report struct {
	Verified       int64    `json:"verified"`
	Chains         int      `json:"chains"`
	Anchored       int      `json:"anchored"`       // chains verified from a retention anchor
	FromCheckpoint int      `json:"fromCheckpoint"` // chains verified from the checkpoint
	Notes          []string `json:"notes,omitempty"`
	// Gaps are the records the store lost, as the writers recorded them.
	Gaps []Gap `json:"gaps,omitempty"`
	// DeadLetters are the records the store refused as data, kept outside
	// the chains.
	DeadLetters *DeadLetterSummary `json:"deadLetters,omitempty"`
}

// errEnough stops a scan at the head read before it: records appended
// since belong to the next verification.
var errEnough = errors.New("enough")

// VerifyChains verifies every chain of a trail from its start (or
// retention anchor) and returns the number of records verified.
func VerifyChains(ctx context.Context, c Chains) (int64, error) {
	r, err := Verify(ctx, c, VerifyOptions{})
	return r.Verified, err
}

// Verify verifies every chain of a trail and that each ends where its head
// says (a chain cut short has lost records at its end). A broken chain is
// reported as a *Break (wrapping ErrBroken, and ErrCheckpointNotReached
// when the checkpoint's record is gone or differs); a trail whose chains
// hold but which lost records (Report.Gaps) as ErrGap, or has records the
// store refused (Report.DeadLetters) as ErrDeadLettered; a cancelled ctx as
// ctx's error.
func Verify(ctx context.Context, c Chains, o VerifyOptions) (Report, error) {
	r, err := verify(ctx, c, o)
	// Retention may commit between reading a chain's anchor and scanning
	// it: the first record left then links to a newer anchor than the one
	// read. Such a break is at a chain's first record; reading the anchors
	// again tells it from a real one.
	if b := (*Break)(nil); errors.As(err, &b) && b.Index == 0 && b.kind == nil {
		return verify(ctx, c, o)
	}
	return r, err
}

// start is where one chain's walk begins.
type start struct {
	seq  int64
	hash string
	full bool // from the chain's start or anchor: its record count is checked too
}

func verify(ctx context.Context, c Chains, o VerifyOptions) (Report, error) {
	heads, err := c.AuditChains(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("verify audit: %w", err)
	}
	rep := Report{Chains: len(heads)}
	starts := make(map[string]start, len(heads))
	for _, h := range heads {
		s := start{seq: h.AnchorSeq, hash: h.Anchor, full: true}
		if s.hash == "" {
			s.hash = GenesisHash
		}
		starts[h.ID] = s
	}
	if o.Checkpoint != nil {
		if err := fromCheckpoint(ctx, c, o.Checkpoint, heads, starts, &rep); err != nil {
			return rep, err
		}
	}
	every := o.ProgressEvery
	if every <= 0 {
		every = 100_000
	}
	for _, h := range heads {
		s := starts[h.ID]
		if s.full && s.hash != GenesisHash {
			rep.Anchored++
		}
		v := NewVerifier(s.hash)
		var n int64
		last := s.seq
		err := c.ScanAuditChainAfter(ctx, h.ID, s.seq, func(seq int64, r Record) error {
			if seq > h.Seq {
				return errEnough
			}
			if err := v.Next(&r); err != nil {
				return err
			}
			n++ // counts the records verified
			last = seq
			if o.Progress != nil && (rep.Verified+n)%every == 0 {
				o.Progress(rep.Verified + n)
			}
			return nil
		})
		rep.Verified += n
		if err != nil && !errors.Is(err, errEnough) {
			if b := (*Break)(nil); errors.As(err, &b) {
				b.Chain = h.ID
			}
			return rep, fmt.Errorf("verify audit chain %q: %w", h.ID, err)
		}
		if (s.full && n != h.Records) || v.Last() != h.Head || last != h.Seq {
			return rep, fmt.Errorf("verify audit chain %q: %w", h.ID, &Break{Chain: h.ID, Index: int(n), Why: fmt.Sprintf(
				"the chain holds %d records to position %d ending at %.12s…, its head says position %d ending at %.12s… (records were deleted from its end)",
				n, last, v.Last(), h.Seq, h.Head)})
		}
	}
	if o.Progress != nil {
		o.Progress(rep.Verified)
	}
	var lost []error
	if gl, ok := c.(interface {
		AuditGaps(ctx context.Context) ([]Gap, error)
	}); ok {
		if rep.Gaps, err = gl.AuditGaps(ctx); err != nil {
			return rep, fmt.Errorf("verify audit: %w", err)
		}
		if len(rep.Gaps) > 0 {
			lost = append(lost, fmt.Errorf("%w: %d gap(s), the first: %s", ErrGap, len(rep.Gaps), rep.Gaps[0]))
		}
	}
	if ds, ok := c.(DeadLetterStore); ok {
		sum, err := ds.AuditDeadLetterSummary(ctx)
		if err != nil {
			return rep, fmt.Errorf("verify audit: %w", err)
		}
		if sum.Count > 0 {
			rep.DeadLetters = &sum
			lost = append(lost, fmt.Errorf("%w: %s", ErrDeadLettered, sum))
		}
	}
	return rep, errors.Join(lost...)
}

// fromCheckpoint sets where each chain the checkpoint lists is verified
// from, after checking that the record it signed is still there.
func fromCheckpoint(ctx context.Context, c Chains, cp *Checkpoint, heads []ChainHead, starts map[string]start, rep *Report) error {
	byID := make(map[string]ChainHead, len(heads))
	for _, h := range heads {
		byID[h.ID] = h
	}
	for _, p := range cp.Chains {
		notReached := func(format string, args ...any) error {
			return &Break{Chain: p.Chain, Index: 0, kind: ErrCheckpointNotReached,
				Why: fmt.Sprintf("checkpoint of %s: ", cp.Time.UTC().Format("2006-01-02T15:04:05Z")) + fmt.Sprintf(format, args...)}
		}
		h, ok := byID[p.Chain]
		if !ok {
			return notReached("the chain is gone (the checkpoint has it at position %d, %.12s…): its records were deleted", p.Seq, p.Hash)
		}
		if p.Seq > h.Seq {
			return notReached("the chain ends at position %d, before the checkpointed position %d: records were deleted from its end", h.Seq, p.Seq)
		}
		hash, found, err := c.AuditRecordHash(ctx, p.Chain, p.Seq)
		switch {
		case err != nil:
			return fmt.Errorf("verify audit chain %q: %w", p.Chain, err)
		case found && hash != p.Hash:
			return notReached("the record at position %d is %.12s…, the checkpoint signed %.12s…: it was replaced", p.Seq, hash, p.Hash)
		case found:
			starts[p.Chain] = start{seq: p.Seq, hash: p.Hash}
			rep.FromCheckpoint++
		case h.AnchorSeq == p.Seq && h.Anchor != p.Hash:
			return notReached("retention's anchor at position %d has hash %.12s…, the checkpoint signed %.12s…", p.Seq, h.Anchor, p.Hash)
		case h.AnchorSeq >= p.Seq:
			// Retention deleted it: what is left is verified from the
			// anchor, as without a checkpoint.
			rep.Notes = append(rep.Notes, fmt.Sprintf("chain %q: retention deleted the checkpointed record (position %d); verified from its anchor (position %d)", p.Chain, p.Seq, h.AnchorSeq))
		default:
			return notReached("the record at position %d (%.12s…) is gone: it and possibly records after it were deleted", p.Seq, p.Hash)
		}
	}
	return nil
}
