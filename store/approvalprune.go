package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/meshguard/meshguard/approval"
)

// MaxApprovalPruneBatch bounds the approvals one transaction of
// PruneApprovals deletes: a large backlog goes in many short
// transactions, none holding the write lock long.
const MaxApprovalPruneBatch = 10_000

// PruneApprovals deletes the approvals whose expiry is before before (the
// retention loop passes now less APPROVAL_RETENTION), batch rows per
// transaction (1 to MaxApprovalPruneBatch), until none is left, and
// returns how many it deleted. Every approval ends by its expiry — a
// pending one expires, an approved one's window ends, a denied one stops
// refusing retries — so none that can still be decided or used is
// touched; before after the store's now is refused (approval.ErrInvalid)
// and deletes nothing. The audit trail keeps each approval's history.
func (s *db) PruneApprovals(ctx context.Context, before time.Time, batch int) (int64, error) {
	switch {
	case batch < 1 || batch > MaxApprovalPruneBatch:
		return 0, fmt.Errorf("prune approvals: %w: batch %d is outside 1..%d", approval.ErrInvalid, batch, MaxApprovalPruneBatch)
	case before.After(s.now()):
		return 0, fmt.Errorf("prune approvals: %w: %s is in the future: approvals still running would go", approval.ErrInvalid, before.UTC().Format(time.RFC3339))
	}
	cut := toMicros(before)
	var total int64
	for {
		var n int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM approvals WHERE id IN
				(SELECT id FROM approvals WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)`, cut, batch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune approvals expired before %s: %w", before.UTC().Format(time.RFC3339), err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}
