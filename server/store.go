package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

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

// watchAgents drops cached agents and verified tokens as soon as another
// replica (or anyone) changes an agent in the shared database.
func (p *parts) watchAgents(ctx context.Context, log *slog.Logger) {
	if p.pg == nil {
		return // one replica: the admin API invalidates what it changes
	}
	_ = p.pg.WatchAgents(ctx, func(id string) {
		if id == "" {
			p.cached.Purge()
		} else {
			p.cached.InvalidateAgent(id)
		}
		p.agents.Invalidate()
		p.pub.changed()
	}, func(err error) {
		log.Warn("listening for agent changes failed; changes made on other replicas may take up to a minute to apply", "error", err)
	})
}
