package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
	"github.com/meshguard/meshguard/trust"
)

// TestPostgresWatchFeeds: one Watch reports, on one connection, the key of
// every change to stored policies, signing keys, services and agents, and
// every token revocation, made
// through another handle (another replica), after the "" that says it
// listens.
func TestPostgresWatchFeeds(t *testing.T) {
	u := pgtest.NewDatabase(t)
	watcher, writer := openPostgres(t, u), openPostgres(t, u)

	next := watchAll(t, func(ctx context.Context, fns map[store.Feed]func(string)) error {
		return watcher.Watch(ctx, fns, func(err error) { t.Errorf("watch failed: %v", err) })
	})
	listening := map[store.Feed]bool{}
	for range allFeeds {
		n := next()
		if n.key != "" {
			t.Fatalf("before listening was said: %+v", n)
		}
		listening[n.feed] = true
	}
	if len(listening) != len(allFeeds) {
		t.Fatalf("listening said for %v", listening)
	}

	key, err := identity.GenerateKey(identity.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	key.CreatedAt = time.Now()
	agent := identity.Agent{ID: "agent_w", Name: "w", TrustTier: trust.Verified, Status: identity.StatusActive}
	tests := []struct {
		name  string
		write func() error
		want  feedNote
	}{
		{"policy applied", func() error { _, err := writer.PutPolicy(t.Context(), "readers", "name: readers\n"); return err }, feedNote{store.FeedPolicies, "readers"}},
		{"policy deleted", func() error { return writer.DeletePolicy(t.Context(), "readers") }, feedNote{store.FeedPolicies, "readers"}},
		{"key rotated in", func() error { return writer.RotateKey(t.Context(), key) }, feedNote{store.FeedKeys, key.KID}},
		{"key deleted", func() error { return writer.DeleteKey(t.Context(), key.KID) }, feedNote{store.FeedKeys, key.KID}},
		{"service put", func() error { return writer.PutService(t.Context(), "ledger", "{}") }, feedNote{store.FeedServices, "ledger"}},
		{"agent created", func() error { _, err := writer.CreateAgent(t.Context(), agent); return err }, feedNote{store.FeedAgents, "agent_w"}},
		{"token revoked", func() error {
			_, _, err := writer.RevokeToken(t.Context(), identity.RevokedToken{JTI: "jti-w", AgentID: "agent_w", ExpiresAt: time.Now().Add(time.Hour)})
			return err
		}, feedNote{store.FeedRevokedTokens, "jti-w"}},
		// Another token with that jti, living longer: every replica must
		// learn the later exp.
		{"token revoked again until later", func() error {
			_, _, err := writer.RevokeToken(t.Context(), identity.RevokedToken{JTI: "jti-w", AgentID: "agent_w", ExpiresAt: time.Now().Add(2 * time.Hour)})
			return err
		}, feedNote{store.FeedRevokedTokens, "jti-w"}},
	}
	for _, tt := range tests {
		if err := tt.write(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := next(); got != tt.want {
			t.Fatalf("%s: notified %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestPostgresWatchRefusesUnknownFeeds: a channel no trigger announces on
// would be listened to in vain.
func TestPostgresWatchRefusesUnknownFeeds(t *testing.T) {
	s := openPostgres(t, pgtest.NewDatabase(t))
	err := s.Watch(t.Context(), map[store.Feed]func(string){"meshguard_nothing": func(string) {}}, nil)
	if !errors.Is(err, store.ErrUnknownFeed) {
		t.Fatalf("Watch = %v, want ErrUnknownFeed", err)
	}
}
