package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The channels the triggers of migrations 0004 and 0006 announce changes
// on.
const (
	agentsChannel   = "meshguard_agents"
	servicesChannel = "meshguard_services"
)

// WatchAgents calls changed with the id of every agent created, changed or
// deleted in the database, by any replica or anyone else, as its
// transaction commits, until ctx ends; then it returns nil. Replicas use it
// to drop what they cached about an agent at once (SPEC §2: revocation
// reaches every replica within a second), where a TTL alone would leave
// verified tokens cached for their whole cache lifetime.
//
// It listens on a connection of its own. Once listening — at first, and
// after each reconnection (a failed connection is reported to failed, if
// not nil, and retried with backoff) — it calls changed(""): anything may
// have changed unseen before, and "" means "forget every agent".
func (s *Postgres) WatchAgents(ctx context.Context, changed func(id string), failed func(error)) error {
	return s.watch(ctx, agentsChannel, changed, failed)
}

// WatchServices is WatchAgents for the services put through the admin API
// (the payload is the service's name): replicas reload their catalogue and
// push it to their Envoys.
func (s *Postgres) WatchServices(ctx context.Context, changed func(name string), failed func(error)) error {
	return s.watch(ctx, servicesChannel, changed, failed)
}

func (s *Postgres) watch(ctx context.Context, channel string, changed func(string), failed func(error)) error {
	backoff := 50 * time.Millisecond
	for {
		err := s.listen(ctx, channel, changed)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the watch ends when its context does; the listen error is that ending
		}
		if failed != nil {
			failed(fmt.Errorf("watch %s: %w", channel, err))
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
func (s *Postgres) listen(ctx context.Context, channel string, changed func(string)) error {
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
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	// Anything may have changed before the LISTEN took hold (at start,
	// or while reconnecting): "" says so.
	changed("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		changed(n.Payload)
	}
}
