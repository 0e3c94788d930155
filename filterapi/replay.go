package filterapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
)

// errNotReproduced marks a shipped allow MeshGuard would not have given.
var errNotReproduced = errors.New("MeshGuard would not have allowed it")

// reproduceAllow checks a shipped allow against what MeshGuard holds: the
// agent exists under that name and was active when the filter decided;
// and, without a delegation, the policies allow that agent the action —
// the policies of the revision the record names if this server had them
// in force (now or lately: policy.Loader.Revision), else the policies in
// force now, so that naming an unknown revision (or none) escapes no
// check. A delegated record is checked with its chain as the engine checks
// it (delegators: every delegator allowed the action, covered by a
// delegation block, within depth and ceilings), the token's scope aside:
// the record does not hold it, and a scope only ever narrows. Denials are not checked: a forged denial
// hides nothing that was let through.
func (a *API) reproduceAllow(ctx context.Context, rec *audit.Record) error {
	if rec.Decision != "allow" {
		return nil
	}
	agent, err := a.cfg.Agents.GetAgent(ctx, rec.AgentID)
	switch {
	case errors.Is(err, identity.ErrNotFound):
		return fmt.Errorf("%w: agentId %q is no agent", errNotReproduced, rec.AgentID)
	case err != nil:
		return fmt.Errorf("looking up agent %s: %w", rec.AgentID, err)
	case agent.Name != rec.AgentName:
		return fmt.Errorf("%w: agentName %q is not agent %s's name", errNotReproduced, rec.AgentName, rec.AgentID)
	case !agent.Active() && !agent.UpdatedAt.After(rec.Timestamp):
		return fmt.Errorf("%w: agent %s was revoked before the stamp", errNotReproduced, rec.AgentID)
	}
	chain, err := a.delegators(ctx, rec)
	if err != nil {
		return err
	}
	set, known := a.cfg.Policies.Revision(rec.PolicyRevision)
	if !known {
		set = a.cfg.Policies.Current()
	}
	if set == nil {
		// No set at all (policy.Loader always has one, empty before the
		// first load): MeshGuard would have denied it.
		return fmt.Errorf("%w: no policies are loaded", errNotReproduced)
	}
	d := set.Evaluate(&policy.Input{
		Agent:  policy.Subject{ID: agent.ID, Name: agent.Name, Tier: agent.TrustTier, Tags: agent.Tags, Active: true},
		Chain:  chain,
		Action: rec.Action, Resource: rec.Resource, Context: rec.Context, Time: rec.Timestamp,
	})
	switch {
	case d.Allowed():
		return nil
	case !known:
		return fmt.Errorf("%w: policyRevision %q is no revision MeshGuard had in force lately, and the policies in force (revision %s) give %s (%s)",
			errNotReproduced, rec.PolicyRevision, set.Revision(), d.Effect, d.Reason)
	case set == a.cfg.Policies.Current():
		return fmt.Errorf("%w: the policies in force (revision %s) give %s (%s)", errNotReproduced, set.Revision(), d.Effect, d.Reason)
	default:
		return fmt.Errorf("%w: the policies of revision %s give %s (%s)", errNotReproduced, set.Revision(), d.Effect, d.Reason)
	}
}

// delegators are the agents a shipped allow's chain names before its actor
// (root first), as the policies read them; a chain must end with the
// record's agent, as the engine's do, and name agents MeshGuard has, each
// active when the filter decided.
func (a *API) delegators(ctx context.Context, rec *audit.Record) ([]policy.Subject, error) {
	n := len(rec.Chain)
	switch {
	case n == 0:
		return nil, nil
	case rec.Chain[n-1] != rec.AgentID:
		return nil, fmt.Errorf("%w: chain ends with %q, which is not the record's agent %s", errNotReproduced, rec.Chain[n-1], rec.AgentID)
	case n-1 > policy.MaxDelegation:
		// Bounds the lookups below; the policies deny such a chain anyway.
		return nil, fmt.Errorf("%w: chain: %d delegating agents, at most %d are allowed", errNotReproduced, n-1, policy.MaxDelegation)
	}
	chain := make([]policy.Subject, 0, n-1)
	for _, id := range rec.Chain[:n-1] {
		u, err := a.cfg.Agents.GetAgent(ctx, id)
		switch {
		case errors.Is(err, identity.ErrNotFound):
			return nil, fmt.Errorf("%w: chain: %q is no agent", errNotReproduced, id)
		case err != nil:
			return nil, fmt.Errorf("looking up agent %s: %w", id, err)
		}
		chain = append(chain, policy.Subject{ID: u.ID, Name: u.Name, Tier: u.TrustTier, Tags: u.Tags,
			Active: u.Active() || u.UpdatedAt.After(rec.Timestamp)})
	}
	return chain, nil
}
