package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/console"
)

// consoleSecret names the stored secret that keys the console's sessions:
// one for every replica sharing the store, so a session works on each.
const consoleSecret = "console-session"

// buildConsole puts the web console on the router (CONSOLE, on by
// default: like the admin API it answers only the admin token).
func (p *parts) buildConsole(ctx context.Context, cfg *config.Config, api *admin.API, limiter console.Limiter, log *slog.Logger) error {
	if !cfg.Console {
		return nil
	}
	secret, err := p.db.Secret(ctx, consoleSecret, console.MinSecretBytes)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	c, err := console.New(console.Config{Token: api.Token(), Secret: secret, Audit: p.db, Agents: p.db,
		Policies: p.loader, Limiter: limiter, Approvals: p.approvals,
		Alerts: api.Alerts(), XDS: p.xds, TraceURL: cfg.ConsoleTraceURL, Logger: log,
		AgentAPI: api.AgentsHandler()})
	if err != nil {
		return err
	}
	c.Register(p.router)
	return nil
}
