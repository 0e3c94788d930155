package store

import (
	"context"
	"fmt"
	"time"

	"github.com/meshguard/meshguard/ratelimit"
)

var _ ratelimit.CountStore = (*Postgres)(nil)

// upsertRateCountsSQL records this replica's counts. A count replaces the
// stored one only if its seq is higher: exchanges from one replica may
// overlap and arrive out of order.
const upsertRateCountsSQL = `INSERT INTO rate_counts (key, window_start, replica, count, seq, expires_at)
SELECT k, s, $1, n, q, e FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) AS m(k, s, n, q, e)
ON CONFLICT (key, window_start, replica) DO UPDATE SET count = EXCLUDED.count, seq = EXCLUDED.seq
    WHERE rate_counts.seq < EXCLUDED.seq`

// readRateCountsSQL reads the other replicas' totals for some windows.
//
// It is a statement of its own, run once upsertRateCountsSQL has
// committed, not a second part of the same statement: a statement reads
// the snapshot taken when it starts, so two replicas' exchanges overlapping
// in time could each read the other's count from before the other's
// write, and both keep reservations that together exceed the limit. Apart,
// of two overlapping exchanges the one that reads last sees the other's
// count (its write committed before its own read, which came before this
// read), which is what ratelimit.CountStore asks for.
const readRateCountsSQL = `SELECT r.key, r.window_start, SUM(r.count)::bigint, COUNT(*)
FROM rate_counts r JOIN unnest($2::text[], $3::bigint[]) AS w(k, s) ON r.key = w.k AND r.window_start = w.s
WHERE r.replica <> $1
GROUP BY r.key, r.window_start`

// rateCountsSweepEvery is how often a replica deletes expired counts.
const rateCountsSweepEvery = 10 * time.Second

// SyncRateCounts implements ratelimit.CountStore: it records replica's
// counts (each replacing one with a lower Seq for its key and window), then
// returns the other replicas' totals for the windows in want. Two round
// trips: see readRateCountsSQL. Now and then it also
// deletes counts of windows that ended long enough ago not to matter.
func (s *Postgres) SyncRateCounts(ctx context.Context, replica string, mine []ratelimit.Count, want []ratelimit.Window) ([]ratelimit.Total, error) {
	n := len(mine)
	keys, starts, ns, seqs, expires := make([]string, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, c := range mine {
		keys[i], starts[i], ns[i], seqs[i] = c.Key, toMicros(c.Start), c.N, c.Seq
		// A window's count matters while it is the current or the
		// previous one.
		expires[i] = toMicros(c.Start.Add(2 * c.Size))
	}
	wkeys, wstarts := make([]string, len(want)), make([]int64, len(want))
	for i, w := range want {
		wkeys[i], wstarts[i] = w.Key, toMicros(w.Start)
	}
	if n > 0 {
		// Committed (no transaction) before the read below starts.
		if _, err := s.pool.ExecContext(ctx, upsertRateCountsSQL, replica, keys, starts, ns, seqs, expires); err != nil {
			return nil, fmt.Errorf("sync rate counts: %w", err)
		}
	}
	rows, err := s.pool.QueryContext(ctx, readRateCountsSQL, replica, wkeys, wstarts)
	if err != nil {
		return nil, fmt.Errorf("sync rate counts: %w", err)
	}
	defer rows.Close()
	out := []ratelimit.Total{}
	for rows.Next() {
		var (
			t     ratelimit.Total
			start int64
		)
		if err := rows.Scan(&t.Key, &start, &t.N, &t.Replicas); err != nil {
			return nil, fmt.Errorf("sync rate counts: %w", err)
		}
		t.Start = fromMicros(start)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sync rate counts: %w", err)
	}
	if err := s.sweepRateCounts(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// sweepRateCounts deletes expired counts, at most every
// rateCountsSweepEvery per handle.
func (s *Postgres) sweepRateCounts(ctx context.Context) error {
	now := s.now()
	last := s.lastSweep.Load()
	if now.UnixMicro()-last < rateCountsSweepEvery.Microseconds() || !s.lastSweep.CompareAndSwap(last, now.UnixMicro()) {
		return nil
	}
	if _, err := s.pool.ExecContext(ctx, `DELETE FROM rate_counts WHERE expires_at < $1`, toMicros(now)); err != nil {
		return fmt.Errorf("sweep rate counts: %w", err)
	}
	return nil
}
