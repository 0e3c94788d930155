package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Pruner deletes the records older than a time and leaves an anchor, so
// the records left still verify (store.SQLite's PruneAudit).
type Pruner interface {
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
}

// ApprovalPruner deletes human approvals whose expiry is before a time,
// batch rows per transaction (store's PruneApprovals).
type ApprovalPruner interface {
	PruneApprovals(ctx context.Context, before time.Time, batch int) (int64, error)
}

// ApprovalPruneBatch is how many approvals one transaction deletes.
const ApprovalPruneBatch = 1000

// Retention deletes whole days of records past AUDIT_RETENTION_DAYS, and
// the human approvals past their expiry by more than APPROVAL_RETENTION:
// the trail keeps each approval's history, the approvals table need not.
type Retention struct {
	Store Pruner
	Days  int
	// Approvals, if set, are pruned too: those whose expiry is more than
	// ApprovalsAfter ago (0: kept forever).
	Approvals      ApprovalPruner
	ApprovalsAfter time.Duration
	// Every is how often Run prunes (default one hour).
	Every  time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Cutoff is the first instant kept: the start (UTC) of the day Days days
// before now's. Everything before it goes, a whole day at a time.
func (r *Retention) Cutoff(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -r.Days)
}

// Prune deletes the records before the cutoff once.
func (r *Retention) Prune(ctx context.Context) (int64, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	at := now()
	cut := r.Cutoff(at)
	n, err := r.Store.PruneAudit(ctx, cut)
	if err != nil {
		err = fmt.Errorf("audit retention: %w", err)
	}
	if n > 0 && r.Logger != nil {
		r.Logger.Info("audit retention deleted old records; an anchor keeps the rest verifiable", "deleted", n, "before", cut)
	}
	// Approvals are pruned whatever became of the records: one failing
	// must not keep the other growing.
	return n, errors.Join(err, r.pruneApprovals(ctx, at))
}

// pruneApprovals deletes the approvals that expired more than
// ApprovalsAfter before at.
func (r *Retention) pruneApprovals(ctx context.Context, at time.Time) error {
	if r.Approvals == nil || r.ApprovalsAfter <= 0 {
		return nil
	}
	before := at.Add(-r.ApprovalsAfter)
	n, err := r.Approvals.PruneApprovals(ctx, before, ApprovalPruneBatch)
	if n > 0 && r.Logger != nil {
		r.Logger.Info("approval retention deleted approvals past their expiry; the audit trail keeps their history", "deleted", n, "before", before)
	}
	if err != nil {
		return fmt.Errorf("approval retention: %w", err)
	}
	return nil
}

// Run prunes at once and then every Every until ctx ends. A failure is
// logged and tried again next time.
func (r *Retention) Run(ctx context.Context) {
	every := r.Every
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.Prune(ctx); err != nil && ctx.Err() == nil && r.Logger != nil {
			r.Logger.Error("audit retention failed; retrying later", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
