package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store"
)

// openStore opens PostgreSQL if DATABASE_URL is set, else SQLite in
// DATA_DIR.
func (p *parts) openStore(ctx context.Context, cfg *config.Config) error {
	if cfg.DatabaseURL == "" {
		db, err := store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "meshguard.db"))
		if err != nil {
			return fmt.Errorf("opening the store in DATA_DIR: %w", err)
		}
		p.db = db
		return nil
	}
	pg, err := store.OpenPostgres(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	p.db, p.pg = pg, pg
	return nil
}

// listenStore listens on the store's change feeds (PostgreSQL only) before
// build first reads keys, revocations, policies and services from the
// database: each is then read once at start, and what commits after the
// read arrives as a notification, however late watchStore starts. A
// connection that fails here is reported and retried by watchStore, which
// then reloads everything.
func (p *parts) listenStore(ctx context.Context) error {
	if p.pg == nil {
		return nil
	}
	l, err := p.pg.Listen(ctx, store.FeedAgents, store.FeedServices, store.FeedPolicies, store.FeedKeys, store.FeedRevokedTokens)
	if err != nil {
		return fmt.Errorf("the store's change feed: %w", err)
	}
	p.feed = l
	return nil
}

// watchStore keeps this replica in step with changes other replicas (or
// anyone) make in the shared database, as they commit, through the store's
// change feeds on one connection: agents (cached agents and verified tokens
// dropped), stored services (catalogue reloaded), stored policies (policy
// set reloaded), signing keys (keyring reloaded) and revoked tokens (the
// verifier's list reloaded). Each change also regenerates the wasm filter's
// configuration, which carries all five.
func (p *parts) watchStore(ctx context.Context, revokedReload time.Duration, log *slog.Logger) {
	if p.feed == nil {
		return // one replica: the admin API applies what it changes
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	// Reloads run off the feed's goroutine, a burst of changes (one
	// notification per policy of an apply) coalesced into one or two: a
	// slow reload must not hold up a revocation behind it.
	services := coalesced(ctx, &wg, func(ctx context.Context) {
		if err := p.services.Load(ctx); err != nil && ctx.Err() == nil {
			log.Error("service catalogue reload failed; the last good catalogue stays served", "error", err)
		}
	})
	policies := coalesced(ctx, &wg, func(ctx context.Context) { p.reloadPolicies(ctx, log) })
	keys := coalesced(ctx, &wg, func(ctx context.Context) { p.reloadKeys(ctx, log) })
	revoked := coalesced(ctx, &wg, func(ctx context.Context) { p.reloadRevokedAfterChange(ctx, log) })
	// The safety net should notifications stop unnoticed: the list is
	// read again every revokedReload anyway.
	wg.Go(func() {
		t := time.NewTicker(revokedReload)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				revoked()
			}
		}
	})
	// The feed listens since build (listenStore): its first round says no
	// "" (build read everything after the LISTEN), a reconnection does.
	err := p.feed.Watch(ctx, map[store.Feed]func(string){
		store.FeedAgents: func(id string) {
			if id == "" {
				p.cached.Purge()
			} else {
				p.cached.InvalidateAgent(id)
			}
			p.agents.Invalidate()
			p.pub.changed()
		},
		store.FeedServices: func(string) { services() },
		store.FeedPolicies: func(string) { policies() },
		store.FeedKeys:     func(string) { keys() },
		// A revocation is added by reading the list again, merged:
		// the jti alone does not say until when to keep it.
		store.FeedRevokedTokens: func(string) { revoked() },
	}, func(err error) {
		log.Warn("listening for changes made on other replicas failed; retrying, and everything is reloaded once listening again", "error", err)
	})
	if err != nil {
		// Only a programming error (feeds listened on and watched apart).
		log.Error("changes made on other replicas are not followed", "error", err)
	}
}

// coalesced runs fn on a goroutine of its own (counted in wg, ended with
// ctx) after each call of the returned kick, which never blocks: kicks
// while fn runs make one more run, not one each.
func coalesced(ctx context.Context, wg *sync.WaitGroup, fn func(context.Context)) (kick func()) {
	c := make(chan struct{}, 1)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-c:
				fn(ctx)
			}
		}
	})
	return func() {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// reloadPolicies reloads the policy set (files and stored policies) after
// a stored policy changed, and republishes the wasm filter's configuration.
// A set that does not load leaves the last good one in force.
func (p *parts) reloadPolicies(ctx context.Context, log *slog.Logger) {
	set, err := p.loader.Reload(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("policy reload after a change on another replica failed; the last good policy set stays in force", "error", err)
		}
		return
	}
	log.Info("policies reloaded: a stored policy changed", "policies", set.Len(), "revision", set.Revision())
	p.pub.changed()
}

// reloadKeys reloads the keyring after a key changed: a key rotated in
// elsewhere signs here and is in the JWKS at once; tokens of a key deleted
// elsewhere stop verifying from the cache.
func (p *parts) reloadKeys(ctx context.Context, log *slog.Logger) {
	before := p.keys.Keyring().VerificationKIDs(time.Now())
	if err := p.keys.Reload(ctx); err != nil {
		if ctx.Err() == nil {
			log.Warn("reloading signing keys after a change on another replica failed; the periodic reload retries", "error", err)
		}
		return
	}
	after := p.keys.Keyring().VerificationKIDs(time.Now())
	for _, kid := range before {
		if !slices.Contains(after, kid) {
			p.cached.InvalidateKey(kid)
		}
	}
	p.pub.changed()
}
