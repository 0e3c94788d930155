package admin

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
// and, when the record names the policy set in force now and no
// delegation, the policies allow that agent the action. A record from
// another revision, or a delegated one (whose token scope is not in the
// record), is checked on the agent only: the policies it was decided on
// are no longer here to ask. Denials are not checked: a forged denial
// hides nothing that was let through.
func (a *API) reproduceAllow(ctx context.Context, rec *audit.Record) error {
	if rec.Decision != "allow" {
		return nil
	}
	agent, err := a.cfg.Store.GetAgent(ctx, rec.AgentID)
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
	set := a.cfg.Policies.Current()
	if set == nil || rec.PolicyRevision != set.Revision() || len(rec.Chain) > 1 {
		return nil
	}
	d := set.Evaluate(&policy.Input{
		Agent:  policy.Subject{ID: agent.ID, Name: agent.Name, Tier: agent.TrustTier, Tags: agent.Tags, Active: true},
		Action: rec.Action, Resource: rec.Resource, Context: rec.Context, Time: rec.Timestamp,
	})
	if !d.Allowed() {
		return fmt.Errorf("%w: the policies in force (revision %s) give %s (%s)", errNotReproduced, set.Revision(), d.Effect, d.Reason)
	}
	return nil
}
