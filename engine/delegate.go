package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
)

// SourceDelegation is the source of a Delegate record: an agent asked
// MeshGuard to mint a delegation token (POST /v1/delegations).
const SourceDelegation Source = "delegation"

// DelegateAction prefixes the action of a Delegate record: "delegate:" and
// the delegate as the caller named it (id or name).
const DelegateAction = "delegate:"

// MaxScopeEntries bounds a requested delegation's actions (identity's bound
// on a token's scope).
const MaxScopeEntries = 64

// ErrBadDelegateRequest: a DelegateRequest is malformed (Validate says how).
var ErrBadDelegateRequest = errors.New("bad delegation request")

// AgentNames finds an agent by name (the store).
type AgentNames interface {
	GetAgentByName(ctx context.Context, name string) (identity.Agent, error)
}

// DelegateRequest asks MeshGuard to mint a delegation token: the caller
// hands a task to another agent explicitly (POST /v1/delegations).
type DelegateRequest struct {
	// Caller is the caller as for Check: its Token, its own Delegation
	// token when it acts for a chain itself, SourceAddress and the trace
	// context (SetTraceparent). Nothing else of it is read.
	Caller Request
	// Delegate is the agent that takes the task: an id or a name.
	Delegate string
	// Actions is the token's scope: action patterns.
	Actions []string
	// MaxDepth is how many hand-offs the task may travel from the caller
	// (1 to policy.MaxDelegation; 0 means 1).
	MaxDepth int
	// TTL is the token's lifetime (Config.DelegationTTL if zero); the token
	// never outlives the caller's token or the parent delegation.
	TTL time.Duration
}

// Validate checks the request's own shape (the caller's credentials are
// Delegate's business). Its errors wrap ErrBadDelegateRequest and name the
// field.
func (r *DelegateRequest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadDelegateRequest, fmt.Sprintf(format, args...))
	}
	switch err := edge.CheckText(r.Delegate, policy.MaxPatternLen); {
	case r.Delegate == "":
		return bad("delegate: required (an agent id or name)")
	case errors.Is(err, edge.ErrTextTooLong):
		return bad("delegate: longer than %d bytes", policy.MaxPatternLen)
	case err != nil:
		// Before any lookup: PostgreSQL refuses a NUL in a query, which
		// would be MeshGuard's failure (a 503, no record), not the caller's.
		return bad("delegate: %v", err)
	case len(r.Actions) == 0:
		return bad("actions: required (the action patterns the delegate may perform)")
	case len(r.Actions) > MaxScopeEntries:
		return bad("actions: more than %d", MaxScopeEntries)
	case r.MaxDepth < 0 || r.MaxDepth > policy.MaxDelegation:
		return bad("maxDepth: %d: expected 1 to %d", r.MaxDepth, policy.MaxDelegation)
	case r.TTL < 0:
		return bad("ttl: %s: must not be negative", r.TTL)
	}
	for i, act := range r.Actions {
		// The text rule of a checked action (no control character, valid
		// UTF-8): the scope is minted as sent, so it is refused, not
		// cleaned, and the record shows what the token says.
		if err := edge.CheckText(act, policy.MaxPatternLen); err != nil && !errors.Is(err, edge.ErrTextTooLong) {
			return bad("actions[%d]: %q: %v", i, act, err)
		}
		if act == "" || len(act) > policy.MaxPatternLen || strings.ContainsAny(act, " \t\r\n") || (!strings.Contains(act, ":") && act != "*") {
			return bad("actions[%d]: %q: expected an action pattern verb:resource (or *) without whitespace, at most %d bytes", i, act, policy.MaxPatternLen)
		}
	}
	return nil
}

// Delegation is the outcome of Delegate: a Decision (allowed with status
// 201 and the token in Delegation, or refused with the status and reason
// POST /v1/delegations answers) and, when minted, the grant the token says.
type Delegation struct {
	Decision
	// Grant is what the minted token says (zero when refused).
	Grant identity.DelegationGrant
}

// Delegate mints a delegation token for another agent, or refuses to.
// It authenticates the caller and reads its delegation token as Check does,
// applies the hand-on rule (Set.HandOff) for the chain with the caller
// appended, holds the new token within the parent's depth and scope, and
// records the attempt, minted or refused, like a decision. The error is
// only for MeshGuard's own failures (wrapping ErrInternal), including an
// audit record that cannot be written: then nothing is minted.
func (e *Engine) Delegate(ctx context.Context, r *DelegateRequest) (out Delegation, err error) {
	now := e.cfg.Now()
	c := &r.Caller
	c.Source = SourceDelegation
	e.traceOfDelegation(c)
	d := &out.Decision
	*d = Decision{ID: e.newID("dec_", 12, now), Mode: e.cfg.Mode, Source: SourceDelegation, TraceID: c.TraceID, Time: now,
		Action: DelegateAction + recordable(r.Delegate, MaxActionLen-len(DelegateAction))}
	if !edge.ValidTraceID(d.TraceID) {
		d.TraceID = e.newID("", 16, now)
	}
	ctx, span := e.startCheck(ctx, c, d)
	span.SetName(SpanDelegate)
	defer func() {
		endCheck(span, c, d, err)
		if e.cfg.Observer != nil {
			effect := d.Effect
			if err != nil {
				effect = "error"
			}
			e.cfg.Observer.Decided(string(SourceDelegation), effect, e.cfg.Now().Sub(now))
		}
	}()
	if err := e.delegate(ctx, r, &out, now); err != nil {
		return Delegation{}, err
	}
	if d.Effect == "" {
		d.Effect, d.Status = "allow", 201
	}
	// A refusal is one in every mode: audit mode lets requests through,
	// it does not mint tokens the policies refuse.
	d.Allowed = d.Effect == "allow"
	if !d.Allowed && !span.IsRecording() && e.cfg.DenialTracer != nil {
		e.recordDenial(c, d, now, SpanDelegate)
	}
	if e.cfg.Recorder != nil {
		rec := auditRecord(c, d, e.cfg.Now().Sub(now))
		rec.Context = map[string]any{"scope": recordableScope(r.Actions), "maxDepth": max(r.MaxDepth, 1)}
		if err := e.record(ctx, rec); err != nil {
			return Delegation{}, err
		}
	}
	return out, nil
}

// SpanDelegate names the span of a Delegate (docs/tracing.md).
const SpanDelegate = "meshguard.delegate"

// delegate decides and mints, filling out. A refusal is a denial in
// out.Decision; an error is MeshGuard's own failure.
func (e *Engine) delegate(ctx context.Context, r *DelegateRequest, out *Delegation, now time.Time) error {
	d := &out.Decision
	if err := r.Validate(); err != nil {
		return d.deny(400, ReasonBadRequest, "%v", err)
	}
	if r.Caller.Token == "" {
		return d.deny(401, ReasonUnauthorized, "missing bearer token: send the agent's token in Authorization: Bearer")
	}
	// 1. Who is calling: as at Check.
	v, err := e.authenticate(ctx, r.Caller.Token, d)
	if err != nil || v == nil {
		return err
	}
	caller := subject(&v.Agent, v.Tier)
	set := e.cfg.Policies.Current()
	d.Revision = set.Revision()

	// 2. The chain it acts for, if any: as at Check.
	var grant *verifiedGrant
	d.Chain = []string{caller.ID}
	if r.Caller.Delegation != "" {
		if grant, err = e.chain(ctx, &r.Caller, caller, d); err != nil || grant == nil {
			return err
		}
	}
	var chain []policy.Subject
	if grant != nil {
		chain = grant.members
	}

	// 3. Who takes the task.
	target, found, err := e.delegateAgent(ctx, r.Delegate)
	switch {
	case err != nil:
		return err
	case !found:
		return d.deny(400, ReasonBadRequest, "delegate: no agent with id or name %q", r.Delegate)
	case target.ID == caller.ID:
		return d.deny(400, ReasonBadRequest, "delegate: an agent cannot delegate to itself")
	}
	d.Resource, d.TargetAgent = target.ID, target.ID
	if !target.Active() {
		return d.deny(403, policy.ReasonDelegationRevoked, "the delegate %q is revoked", target.Name)
	}

	// 4. The hand-on rule, as for a hop at Check: revoked, repeat,
	// untrusted, not permitted, depth.
	hs := e.child(ctx, SpanHandOff)
	hd := set.HandOff(chain, caller, subject(&target, target.TrustTier))
	endHandOff(hs, &target, &hd)
	if !hd.Allowed() {
		d.Policy = hd.Policy
		return d.deny(403, hd.Reason, "delegating to %q: %s", target.Name, hd.Message)
	}
	d.Reason, d.Message = hd.Reason, hd.Message

	// 5. Within the parent: its depth and scope.
	depth := max(r.MaxDepth, 1)
	delegators := len(chain) + 1 // the agents the delegate will act for
	maxChain := min(delegators+depth-1, policy.MaxDelegation)
	var parent *identity.DelegationGrant
	if grant != nil {
		parent = &grant.DelegationGrant
		if parent.MaxChain > 0 && delegators > parent.MaxChain {
			return d.deny(403, policy.ReasonDelegationDepth, "the parent delegation allows at most %d delegating agents; handing on would make %d", parent.MaxChain, delegators)
		}
		if parent.MaxChain > 0 && maxChain > parent.MaxChain {
			return d.deny(403, policy.ReasonDelegationDepth, "maxDepth %d reaches further than the parent delegation allows (at most %d more hand-offs from here)", depth, parent.MaxChain-delegators+1)
		}
		if parent.Scope != nil {
			for _, act := range r.Actions {
				if !withinScope(parent.Scope, act) {
					return d.deny(403, policy.ReasonDelegationScope, "action %q is outside the parent delegation's scope [%s]", act, strings.Join(parent.Scope, ", "))
				}
			}
		}
	}

	// 6. Mint.
	ttl := r.TTL
	if ttl == 0 {
		ttl = e.cfg.DelegationTTL
	}
	g := handOn(caller.ID, target.ID, parent, &v.Claims, now.Add(ttl), d)
	g.Scope, g.MaxChain = r.Actions, maxChain
	tok, minted, err := e.cfg.Delegator.Delegate(g)
	switch {
	case errors.Is(err, identity.ErrInvalidGrant):
		return d.deny(400, ReasonBadRequest, "%v", err)
	case err != nil:
		return internal("minting the delegation token", err)
	}
	d.Delegation, out.Grant = tok, minted
	return nil
}

// delegateAgent finds the delegate by id or by name. Unknown is not found,
// not an error.
func (e *Engine) delegateAgent(ctx context.Context, key string) (identity.Agent, bool, error) {
	var (
		a   identity.Agent
		err error
	)
	switch {
	case strings.HasPrefix(key, identity.IDPrefix):
		a, err = e.cfg.Agents.GetAgent(ctx, key)
	case e.cfg.Names == nil:
		return identity.Agent{}, false, nil
	default:
		a, err = e.cfg.Names.GetAgentByName(ctx, key)
	}
	switch {
	case errors.Is(err, identity.ErrNotFound):
		return identity.Agent{}, false, nil
	case err != nil:
		return identity.Agent{}, false, internal("looking up the delegate", err)
	}
	return a, true, nil
}

// withinScope reports whether pattern lies inside one of scope: a scope
// pattern that matches the pattern's text (its * taken literally) matches
// everything the pattern does.
func withinScope(scope []string, pattern string) bool {
	for _, s := range scope {
		if policy.Match(s, pattern) {
			return true
		}
	}
	return false
}

// recordableScope is the requested scope fit for the audit record's
// context (MaxContextLen): Validate bounds it to MaxScopeEntries patterns,
// which may still be 64 KiB, so it is cut, with a last "…" entry.
func recordableScope(actions []string) []any {
	out := make([]any, 0, len(actions))
	size := 0
	for _, a := range actions {
		a = recordable(a, MaxActionLen)
		if size += len(a) + 3; size > MaxContextLen/2 {
			return append(out, "…")
		}
		out = append(out, a)
	}
	return out
}
