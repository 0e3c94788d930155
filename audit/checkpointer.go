package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Files in DATA_DIR for the checkpoints.
const (
	CheckpointKeyFile = "audit-checkpoint.key"  // the Ed25519 signing key, 0600
	CheckpointFile    = "audit-checkpoint.json" // the last checkpoint signed
)

// Checkpointer signs the trail's heads every Every and keeps the last
// checkpoint (in memory and, with Path, in a file), so that records
// deleted from a chain's end are caught by the next verification against
// it.
type Checkpointer struct {
	Heads  Heads
	Signer *CheckpointSigner
	// Every is how often Run signs (AUDIT_CHECKPOINT_SECONDS; default 60 s).
	Every time.Duration
	// Path, if set, is where the last checkpoint is written (JSON, 0600):
	// `meshguard audit verify --data-dir` starts from it.
	Path string
	// OnSigned, if set, is called with each checkpoint signed (metrics,
	// a span event).
	OnSigned func(ctx context.Context, cp Checkpoint)
	Now      func() time.Time
	Logger   *slog.Logger

	mu   sync.Mutex
	last *Checkpoint
}

// Sign signs the current heads, logs and records the checkpoint.
func (c *Checkpointer) Sign(ctx context.Context) (Checkpoint, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	heads, err := c.Heads.AuditChains(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	if err := c.reachesLast(ctx, heads); err != nil {
		if c.Logger != nil {
			c.Logger.Error("audit checkpoint refused: the trail no longer reaches the last checkpoint (records were deleted or replaced); `audit verify --incremental` reports it", "error", err)
		}
		return Checkpoint{}, fmt.Errorf("audit checkpoint not signed: %w", err)
	}
	ps := make([]ChainPosition, 0, len(heads))
	for _, h := range heads {
		ps = append(ps, ChainPosition{Chain: h.ID, Seq: h.Seq, Hash: h.Head})
	}
	cp, err := c.Signer.Sign(now(), ps)
	if err != nil {
		return Checkpoint{}, err
	}
	c.mu.Lock()
	c.last = &cp
	c.mu.Unlock()
	if c.Path != "" {
		if err := writeCheckpoint(c.Path, cp); err != nil {
			return cp, err
		}
	}
	if c.Logger != nil {
		attrs := []any{"time", cp.Time, "chains", len(cp.Chains), "key", cp.Key}
		for _, p := range cp.Chains {
			attrs = append(attrs, "chain."+p.Chain, fmt.Sprintf("%d %s", p.Seq, p.Hash))
		}
		c.Logger.Info("audit checkpoint signed", attrs...)
	}
	if c.OnSigned != nil {
		c.OnSigned(ctx, cp)
	}
	return cp, nil
}

// reachesLast checks that heads still reach the last checkpoint signed
// here — this process's, or else the one in Path, signed with this key —
// so that a checkpoint never signs away records deleted or replaced since
// the last one (verify --incremental would start from it and find
// nothing wrong). A loss the writer recorded as a gap is not refused:
// verify reports the gap from then on.
func (c *Checkpointer) reachesLast(ctx context.Context, heads []ChainHead) error {
	c.mu.Lock()
	last := c.last
	c.mu.Unlock()
	if last == nil && c.Path != "" {
		cp, err := ReadCheckpoint(c.Path, c.Signer.VerifierKey())
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err // not this key's, or not a checkpoint: someone replaced it
		default:
			last = &cp
			c.mu.Lock()
			c.last = &cp // what --incremental starts from until the next one
			c.mu.Unlock()
		}
	}
	chains, ok := c.Heads.(Chains)
	if last == nil || !ok {
		return nil
	}
	var rep Report
	err := fromCheckpoint(ctx, chains, last, heads, map[string]start{}, &rep)
	if b := (*Break)(nil); errors.As(err, &b) && b.CheckpointNotReached() {
		if gl, ok := c.Heads.(interface {
			AuditGaps(ctx context.Context) ([]Gap, error)
		}); ok {
			gaps, gerr := gl.AuditGaps(ctx)
			if gerr != nil {
				return errors.Join(err, gerr)
			}
			for _, g := range gaps {
				if g.Chain == b.Chain && g.DetectedAt.After(last.Time) {
					return nil
				}
			}
		}
	}
	return err
}

// Last is the last checkpoint signed, nil before the first.
func (c *Checkpointer) Last() *Checkpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Run signs every Every until ctx ends. A failure is logged and tried
// again next time.
func (c *Checkpointer) Run(ctx context.Context) {
	every := c.Every
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := c.Sign(ctx); err != nil && ctx.Err() == nil && c.Logger != nil {
			c.Logger.Error("audit checkpoint failed; retrying later", "error", err)
		}
	}
}

// writeCheckpoint replaces path with cp, atomically.
func writeCheckpoint(path string, cp Checkpoint) error {
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	return nil
}

// ReadCheckpoint reads a checkpoint file (the JSON `meshguard audit
// checkpoint` prints, or a bare signed note) and verifies it: against key
// if given, else against the key the file names — which proves only that
// the file is whole, so pin the published key where it matters.
func ReadCheckpoint(path, key string) (Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	return ParseCheckpoint(b, key)
}

// ParseCheckpoint is ReadCheckpoint for the file's contents.
func ParseCheckpoint(b []byte, key string) (Checkpoint, error) {
	const maxFile = 16 << 20
	if len(b) > maxFile {
		return Checkpoint{}, fmt.Errorf("%w: larger than %d bytes", ErrBadCheckpoint, maxFile)
	}
	var file Checkpoint
	if err := json.Unmarshal(b, &file); err != nil {
		file = Checkpoint{Note: string(b)} // a bare note
	}
	if key == "" {
		key = file.Key
	}
	if key == "" {
		return Checkpoint{}, fmt.Errorf("%w: no verifier key (give one)", ErrBadCheckpoint)
	}
	return OpenCheckpoint(file.Note, key)
}

// VerifierKey is the public key of the checkpoints signed here.
func (c *Checkpointer) VerifierKey() string { return c.Signer.VerifierKey() }
