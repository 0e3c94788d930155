package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Feed is a channel a trigger announces a table's changes on (migrations
// 0004, 0006, 0008 and 0012), with the changed row's key as the payload.
type Feed string

// The change feeds.
const (
	// FeedAgents carries the id of every agent created, changed or deleted.
	FeedAgents Feed = "meshguard_agents"
	// FeedServices carries the name of every stored service changed.
	FeedServices Feed = "meshguard_services"
	// FeedPolicies carries the name of every stored policy applied or
	// deleted.
	FeedPolicies Feed = "meshguard_policies"
	// FeedKeys carries the kid of every signing key added, retired or
	// deleted.
	FeedKeys Feed = "meshguard_keys"
	// FeedRevokedTokens carries the jti of every token revoked (migration
	// 0012).
	FeedRevokedTokens Feed = "meshguard_revoked_tokens"
)

// ErrUnknownFeed: Watch was asked for a channel no trigger announces on.
var ErrUnknownFeed = errors.New("unknown change feed")

// Watch calls feeds[f] with the key of every row changed in the database under
// feed f, by any replica or anyone else, as its transaction commits, until ctx
// ends; then it returns nil. Replicas use it to drop or reload what they hold at
// once (revocation reaches every replica within a second, docs/storage.md;
// policies, keys and services likewise), where a timer alone would leave them
// stale for its whole period.
//
// Every feed shares one connection of Watch's own. Once listening — at
// first, and after each reconnection (a failed connection is reported to
// failed, if not nil, and retried with backoff) — it calls every feed's
// function with "": anything may have changed unseen, and "" means "forget
// or reload everything". The functions run on Watch's goroutine, one at a
// time: a slow one delays the others' notifications, so hand slow work to
// another goroutine.
func (s *Postgres) Watch(ctx context.Context, feeds map[Feed]func(key string), failed func(error)) error {
	for f := range feeds {
		if !slices.Contains([]Feed{FeedAgents, FeedServices, FeedPolicies, FeedKeys, FeedRevokedTokens}, f) {
			return fmt.Errorf("watch %q: %w", f, ErrUnknownFeed)
		}
	}
	if len(feeds) == 0 {
		return nil
	}
	backoff := 50 * time.Millisecond
	for {
		err := s.listen(ctx, feeds)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the watch ends when its context does; the listen error is that ending
		}
		if failed != nil {
			failed(fmt.Errorf("watch %v: %w", slices.Sorted(maps.Keys(feeds)), err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// listen runs one connection's LISTEN until it fails or ctx ends.
func (s *Postgres) listen(ctx context.Context, feeds map[Feed]func(string)) error {
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return err
	}
	defer func() {
		// A fresh context: ctx may be why we are leaving.
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	order := slices.Sorted(maps.Keys(feeds))
	for _, f := range order {
		// f is one of the constants above (Watch checks), never input.
		if _, err := conn.Exec(ctx, "LISTEN "+string(f)); err != nil {
			return err
		}
	}
	// Anything may have changed before the LISTEN took hold (at start,
	// or while reconnecting): "" says so.
	for _, f := range order {
		feeds[f]("")
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if fn, ok := feeds[Feed(n.Channel)]; ok {
			fn(n.Payload)
		}
	}
}
