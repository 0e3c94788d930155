package audit

import (
	"context"
	"errors"
	"testing"
)

// prunedMidVerify is a trail whose retention ran between the first
// reading of its anchors and the scan: the first listing still has the
// old anchor.
type prunedMidVerify struct {
	rs    []Record // what is left: the last three of a chain of five
	calls int
}

func (p *prunedMidVerify) AuditChains(context.Context) ([]ChainHead, error) {
	p.calls++
	anchor := p.rs[0].PrevHash
	if p.calls == 1 {
		anchor = GenesisHash // read before the prune committed
	}
	return []ChainHead{{Head: p.rs[len(p.rs)-1].Hash, Seq: int64(len(p.rs)), Records: int64(len(p.rs)), Anchor: anchor}}, nil
}

func (p *prunedMidVerify) ScanAuditChainAfter(_ context.Context, _ string, after int64, fn func(int64, Record) error) error {
	for i, r := range p.rs {
		if int64(i+1) <= after {
			continue
		}
		if err := fn(int64(i+1), r); err != nil {
			return err
		}
	}
	return nil
}

func (p *prunedMidVerify) AuditRecordHash(_ context.Context, _ string, seq int64) (string, bool, error) {
	if seq < 1 || seq > int64(len(p.rs)) {
		return "", false, nil
	}
	return p.rs[seq-1].Hash, true, nil
}

func TestVerifyChainsRereadsAnchorsAfterARetentionRace(t *testing.T) {
	p := &prunedMidVerify{rs: chain(t, 5)[2:]}
	if n, err := VerifyChains(context.Background(), p); err != nil || n != 3 {
		t.Fatalf("VerifyChains = %d, %v", n, err)
	}
	// A chain that really is broken at its first record stays broken.
	p = &prunedMidVerify{rs: chain(t, 5)[2:]}
	p.rs[0].Decision = "deny"
	p.calls = 1 // anchors read right from the start
	var b *Break
	if _, err := VerifyChains(context.Background(), p); !errors.As(err, &b) || b.Index != 0 {
		t.Fatalf("a broken first record: %v", err)
	}
}
