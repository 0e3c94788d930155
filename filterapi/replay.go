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
// check. A delegated record (whose token scope is not in the record) is
// checked on the agent only. Denials are not checked: a forged denial
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
	if len(rec.Chain) > 1 {
		return nil
	}
	set, known := a.cfg.Policies.Revision(rec.PolicyRevision)
	if !known {
		set = a.cfg.Policies.Current()
	}
	if set == nil {
		return nil
	}
	d := set.Evaluate(&policy.Input{
		Agent:  policy.Subject{ID: agent.ID, Name: agent.Name, Tier: agent.TrustTier, Tags: agent.Tags, Active: true},
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
