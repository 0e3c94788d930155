package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// agentsChannel is where migration 0004's trigger announces agent changes.
const agentsChannel = "meshguard_agents"

// WatchAgents calls changed with the id of every agent created, changed or
// deleted in the database, by any replica or anyone else, as its
// transaction commits, until ctx ends; then it returns nil. Replicas use it
// to drop what they cached about an agent at once (SPEC §2: revocation
// reaches every replica within a second), where a TTL alone would leave
// verified tokens cached for their whole cache lifetime.
//
// It listens on a connection of its own. When that connection fails it
// reports the error to failed (if not nil), reconnects with backoff, and
// then calls changed("") — anything may have changed unseen meanwhile —
// which means "forget every agent".
func (s *Postgres) WatchAgents(ctx context.Context, changed func(id string), failed func(error)) error {
	backoff := 50 * time.Millisecond
	for first := true; ; first = false {
		err := s.listen(ctx, changed, !first)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the watch ends when its context does; the listen error is that ending
		}
		if failed != nil {
			failed(fmt.Errorf("watch agents: %w", err))
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
func (s *Postgres) listen(ctx context.Context, changed func(string), resumed bool) error {
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
	if _, err := conn.Exec(ctx, "LISTEN "+agentsChannel); err != nil {
		return err
	}
	if resumed {
		changed("")
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		changed(n.Payload)
	}
}
