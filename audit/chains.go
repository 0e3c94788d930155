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
	Records int64  // how many records it holds
	// Anchor is where its verification starts: GenesisHash, or the hash
	// of the last record retention deleted from it.
	Anchor string
}

// Chains is a trail as VerifyChains reads it (store.SQLite, store.Postgres).
type Chains interface {
	AuditChains(ctx context.Context) ([]ChainHead, error)
	// ScanAuditChain calls fn for the records of one chain, in order.
	ScanAuditChain(ctx context.Context, id string, fn func(Record) error) error
}

// errEnough stops a scan at the head read before it: records appended
// since belong to the next verification.
var errEnough = errors.New("enough")

// VerifyChains verifies every chain of a trail and that each ends where
// its head says (a chain cut short has lost records at its end). It
// returns the number of records verified; a broken chain is reported as a
// *Break wrapped with the chain's name.
func VerifyChains(ctx context.Context, c Chains) (int64, error) {
	n, err := verifyChains(ctx, c)
	// Retention may commit between reading a chain's anchor and scanning
	// it: the first record left then links to a newer anchor than the one
	// read. Such a break is at a chain's first record; reading the anchors
	// again tells it from a real one.
	if b := (*Break)(nil); errors.As(err, &b) && b.Index == 0 {
		return verifyChains(ctx, c)
	}
	return n, err
}

func verifyChains(ctx context.Context, c Chains) (int64, error) {
	heads, err := c.AuditChains(ctx)
	if err != nil {
		return 0, fmt.Errorf("verify audit: %w", err)
	}
	var total int64
	for _, h := range heads {
		anchor := h.Anchor
		if anchor == "" {
			anchor = GenesisHash
		}
		v := NewVerifier(anchor)
		var n int64
		err := c.ScanAuditChain(ctx, h.ID, func(r Record) error {
			if n == h.Records {
				return errEnough
			}
			if err := v.Next(&r); err != nil {
				return err
			}
			n++ // counts the records verified
			return nil
		})
		total += n
		if err != nil && !errors.Is(err, errEnough) {
			if b := (*Break)(nil); errors.As(err, &b) {
				b.Chain = h.ID
			}
			return total, fmt.Errorf("verify audit chain %q: %w", h.ID, err)
		}
		if n != h.Records || v.Last() != h.Head {
			return total, fmt.Errorf("verify audit chain %q: %w", h.ID, &Break{Chain: h.ID, Index: int(n), ID: "", Why: fmt.Sprintf(
				"the chain holds %d records ending at %.12s…, its head says %d ending at %.12s… (records were deleted from its end)",
				n, v.Last(), h.Records, h.Head)})
		}
	}
	return total, nil
}
