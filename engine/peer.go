package engine

import (
	"context"
	"errors"
	"slices"

	"github.com/meshguard/meshguard/identity"
)

// Mesh identity: the caller's peer principal, the SPIFFE ID the proxy or
// the TLS stack verified (Request.Principal). Only requests that carry one
// pay for these lookups; token-only requests never reach this file.

// boundAgent returns the agent the principal is bound to, and whether
// there is one (by value, as Engine.target does, to keep it off the heap).
// A principal that is not a valid SPIFFE ID is bound to no agent (agents
// only hold valid ones), and is not looked up.
func (e *Engine) boundAgent(ctx context.Context, principal string) (identity.Agent, bool, error) {
	if !identity.ValidSPIFFEID(principal) {
		return identity.Agent{}, false, nil
	}
	a, err := e.cfg.Agents.AgentBySPIFFEID(ctx, principal)
	switch {
	case errors.Is(err, identity.ErrNotFound):
		return identity.Agent{}, false, nil
	case err != nil:
		return identity.Agent{}, false, internal("looking up the peer principal", err)
	}
	return a, true, nil
}

// peer authenticates a request that has a principal and no token: the
// principal's agent, or a 401 in d (false, nil error) when it is bound to
// none or its agent is revoked.
func (e *Engine) peer(ctx context.Context, principal string, d *Decision) (identity.Agent, bool, error) {
	a, ok, err := e.boundAgent(ctx, principal)
	switch {
	case err != nil:
		return a, false, err
	case !ok:
		return a, false, d.deny(401, ReasonUnauthorized, "missing bearer token, and the peer principal %s is bound to no agent", quote(principal))
	case !a.Active():
		d.AgentID, d.AgentName = a.ID, a.Name
		return a, false, d.deny(401, ReasonAgentRevoked, "agent is revoked")
	}
	return a, true, nil
}

// samePeer checks that a request's token and principal name the same
// agent: the principal may not be bound to another agent, and an agent
// bound to SPIFFE IDs may only present its token from one of them (a
// stolen token is then useless from another workload). A mismatch is a
// 403 in d.
func (e *Engine) samePeer(ctx context.Context, principal string, tokenAgent *identity.Agent, d *Decision) error {
	bound, ok, err := e.boundAgent(ctx, principal)
	if err != nil {
		return err
	}
	if ok {
		if bound.ID != tokenAgent.ID {
			return d.deny(403, ReasonIdentityMismatch, "the peer principal %s is bound to another agent than the token's (%q)", quote(principal), tokenAgent.Name)
		}
		return nil
	}
	// The principal is bound to no agent. The token's agent as the store
	// has it now (the verified token's copy may be older): if it is bound
	// to SPIFFE IDs, this principal is not one of them.
	current, err := e.cfg.Agents.GetAgent(ctx, tokenAgent.ID)
	switch {
	case errors.Is(err, identity.ErrNotFound):
		return d.deny(401, ReasonAgentRevoked, "agent is revoked")
	case err != nil:
		return internal("looking up the token's agent", err)
	}
	if len(current.SPIFFEIDs) > 0 && !slices.Contains(current.SPIFFEIDs, principal) {
		return d.deny(403, ReasonIdentityMismatch, "agent %q is bound to SPIFFE IDs and the peer principal %s is none of them", tokenAgent.Name, quote(principal))
	}
	return nil
}
