package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
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
// another goroutine. A caller that reads what it holds only after listening
// needs no first "": see Listen.
func (s *Postgres) Watch(ctx context.Context, feeds map[Feed]func(key string), failed func(error)) error {
	if err := checkFeeds(slices.Collect(maps.Keys(feeds))); err != nil {
		return err
	}
	if len(feeds) == 0 {
		return nil
	}
	return s.watch(ctx, nil, feeds, failed)
}

// Listener is a change feed listening already (Listen): what commits from
// then on is notified to its Watch, however late that starts.
type Listener struct {
	s     *Postgres
	feeds []Feed // sorted
	mu    sync.Mutex
	conn  *pgx.Conn // nil: the first listen failed (err), or Watch or Close took it
	err   error
}

// Listen connects and listens on feeds now, so a caller that reads what it
// holds after Listen returns reads everything committed before, and every
// change committed after is notified to the Listener's Watch, even one
// committed before Watch starts (it waits on the connection). That first
// read is then the only one a start needs: Watch's first round calls no
// function with "" (reconnections still do). A connection that fails here
// is no error: Watch reports it and retries, and says "" once listening.
// Close releases the connection should Watch never run.
func (s *Postgres) Listen(ctx context.Context, feeds ...Feed) (*Listener, error) {
	if err := checkFeeds(feeds); err != nil {
		return nil, err
	}
	l := &Listener{s: s, feeds: slices.Sorted(slices.Values(feeds))}
	l.feeds = slices.Compact(l.feeds)
	if len(l.feeds) > 0 {
		l.conn, l.err = s.connectListening(ctx, l.feeds)
	}
	return l, nil
}

// Watch calls fns[f] with the key of every row changed under feed f since
// Listen, as Postgres.Watch does, except that it says "" only after a
// reconnection (or if Listen's connection failed). fns must have a
// function for every feed listened on and no other. Watch runs once.
func (l *Listener) Watch(ctx context.Context, fns map[Feed]func(key string), failed func(error)) error {
	if !slices.Equal(l.feeds, slices.Sorted(maps.Keys(fns))) {
		return fmt.Errorf("watch %v with functions for %v: %w", l.feeds, slices.Sorted(maps.Keys(fns)), ErrUnknownFeed)
	}
	l.mu.Lock()
	conn, err := l.conn, l.err
	l.conn, l.err = nil, errListenerTaken
	l.mu.Unlock()
	if errors.Is(err, errListenerTaken) {
		return err
	}
	if len(l.feeds) == 0 {
		return nil
	}
	if conn == nil {
		// Listen's connection failed: report it, then listen anew (and
		// say "").
		if ctx.Err() != nil {
			return nil
		}
		if failed != nil {
			failed(fmt.Errorf("watch %v: %w", l.feeds, err))
		}
	}
	return l.s.watch(ctx, conn, fns, failed)
}

// Close closes the connection Listen opened, if Watch has not taken it.
func (l *Listener) Close() {
	l.mu.Lock()
	conn := l.conn
	l.conn, l.err = nil, errListenerTaken
	l.mu.Unlock()
	if conn != nil {
		closeConn(conn)
	}
}

// errListenerTaken: a Listener's Watch ran (or it was closed) already.
var errListenerTaken = errors.New("the change feed's listener is used already")

func checkFeeds(feeds []Feed) error {
	for _, f := range feeds {
		if !slices.Contains([]Feed{FeedAgents, FeedServices, FeedPolicies, FeedKeys, FeedRevokedTokens}, f) {
			return fmt.Errorf("watch %q: %w", f, ErrUnknownFeed)
		}
	}
	return nil
}

// watch delivers feeds' notifications on conn (listening already, nothing
// said; nil: connect first) and on each connection after it, until ctx
// ends.
func (s *Postgres) watch(ctx context.Context, conn *pgx.Conn, feeds map[Feed]func(string), failed func(error)) error {
	order := slices.Sorted(maps.Keys(feeds))
	backoff := 50 * time.Millisecond
	for {
		var err error
		if conn == nil {
			conn, err = s.connectListening(ctx, order)
			if err == nil {
				// Anything may have changed before the LISTEN took hold
				// (at first, or while reconnecting): "" says so.
				for _, f := range order {
					feeds[f]("")
				}
			}
		}
		if err == nil {
			err = deliver(ctx, conn, feeds)
			closeConn(conn)
			conn = nil
		}
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the watch ends when its context does; the listen error is that ending
		}
		if failed != nil {
			failed(fmt.Errorf("watch %v: %w", order, err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// connectListening opens a connection of its own listening on feeds.
func (s *Postgres) connectListening(ctx context.Context, feeds []Feed) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return nil, err
	}
	// One round trip (the simple protocol takes several statements): a
	// start waits for it. Each f is one of the constants above
	// (checkFeeds), never input.
	var listen strings.Builder
	for _, f := range feeds {
		listen.WriteString("LISTEN " + string(f) + ";")
	}
	if _, err := conn.Exec(ctx, listen.String()); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

// deliver hands conn's notifications to feeds until it fails or ctx ends.
func deliver(ctx context.Context, conn *pgx.Conn, feeds map[Feed]func(string)) error {
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

func closeConn(conn *pgx.Conn) {
	// A fresh context: ctx may be why we are leaving.
	cctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(cctx)
}
