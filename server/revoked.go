package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/meshguard/meshguard/identity"
)

// loadRevoked builds the verifier's list of revoked tokens from the store.
// If it cannot be read, MeshGuard does not start: serving as if no token
// were revoked would let every revoked token back in.
func (p *parts) loadRevoked(ctx context.Context) error {
	p.revoked = identity.NewRevokedSet(nil)
	if _, err := p.reloadRevoked(ctx); err != nil {
		return fmt.Errorf("revoked tokens: %w", err)
	}
	return nil
}

// reloadRevoked merges the store's live revocations into the list in
// force (it only grows, but for tokens that expire, so a reload racing a
// revocation loses nothing).
// It reports whether the list gained a revocation or a later exp.
func (p *parts) reloadRevoked(ctx context.Context) (bool, error) {
	list, err := p.db.ListRevokedTokens(ctx, "", identity.MaxRevokedTokens)
	if err != nil {
		return false, err
	}
	added := false
	for i := range list {
		// An unloaded set answers an error: everything is new to it. A
		// jti held until an earlier exp is news too (revoked again for
		// a token that lives longer): the filter carries the exp.
		held, err := p.revoked.Covers(list[i])
		if added = err != nil || !held; added {
			break
		}
	}
	return added, p.revoked.Load(list)
}

// reloadRevokedAfterChange is the change feed's reload: a token revoked
// on another replica is refused here, by ext_authz, the gateway, /v1/check
// and (through its configuration) the wasm filter.
func (p *parts) reloadRevokedAfterChange(ctx context.Context, log *slog.Logger) {
	added, err := p.reloadRevoked(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("reloading revoked tokens after a change on another replica failed; retried at the next change and every few seconds", "error", err)
		}
		return
	}
	if added { // the periodic reload mostly finds nothing new: no regeneration then
		p.pub.changed()
	}
}
