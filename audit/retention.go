package audit

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Pruner deletes the records older than a time and leaves an anchor, so
// the records left still verify (store.SQLite's PruneAudit).
type Pruner interface {
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
}

// Retention deletes whole days of records past AUDIT_RETENTION_DAYS.
type Retention struct {
	Store Pruner
	Days  int
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
	cut := r.Cutoff(now())
	n, err := r.Store.PruneAudit(ctx, cut)
	if err != nil {
		return 0, fmt.Errorf("audit retention: %w", err)
	}
	if n > 0 && r.Logger != nil {
		r.Logger.Info("audit retention deleted old records; an anchor keeps the rest verifiable", "deleted", n, "before", cut)
	}
	return n, nil
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
