package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
)

// decisionBody is the JSON of a decision: api.Decision, with the deny
// body's fields (docs/enforcement.md) on denials.
func decisionBody(d *engine.Decision) api.Decision {
	out := api.Decision{
		Decision: d.Effect, Allowed: d.Allowed, Status: d.Status, Reason: d.Reason, Message: d.Message,
		Policy: d.Policy, Rule: d.Rule, DecisionID: d.ID, TraceID: d.TraceID,
		AgentID: d.AgentID, AgentName: d.AgentName, Action: d.Action, Resource: d.Resource,
		Chain: d.Chain, PolicyRevision: d.Revision, Mode: string(d.Mode),
	}
	if out.Chain == nil {
		out.Chain = []string{}
	}
	if d.AgentID != "" {
		out.TrustTier = d.Tier.String()
	}
	// The engine's own rendering (its deny body and Retry-After): one
	// place says what a status is called and how long to wait.
	out.RetryAfter = d.RetryAfterSeconds()
	if !d.Allowed {
		out.Error = d.ErrorCode()
		out.DenyRetryAfter = out.RetryAfter
		out.DenyTraceID = d.TraceID
	}
	return out
}

// check is POST /v1/check: the explicit enforcement point for SDKs. The
// decision's own status is the answer's status, so SDKs branch on it.
func (a *API) check(w http.ResponseWriter, r *http.Request) {
	var req api.CheckRequest
	if !decodeJSON(w, r, &req, MaxBodyBytes, false) {
		return
	}
	if req.Action == "" {
		badRequest(w, "action: required (verb:resource)")
		return
	}
	tok, delegation, msg := agentCredentials(r)
	if msg != "" {
		badRequest(w, "%s", msg)
		return
	}
	er := engine.Request{
		Source: engine.SourceAPI, Token: tok, Delegation: delegation,
		Action: req.Action, Resource: req.Resource, Context: req.Context,
		SourceAddress: r.RemoteAddr,
	}
	er.SetTraceparent(r.Header.Get("traceparent"))
	d, err := a.cfg.Engine.Check(r.Context(), &er)
	if err != nil {
		a.log.Error("admin: /v1/check: MeshGuard could not decide", "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "%s", engine.Unavailable(err))
		return
	}
	for _, h := range d.ResponseHeaders() {
		w.Header().Set(h.Name, h.Value)
	}
	status := http.StatusOK
	if !d.Allowed {
		status = d.Status
	}
	writeJSON(w, status, decisionBody(&d))
}

// refuseDelegation answers a refused delegation: 403 with a delegation reason
// code (docs/policies.md#delegation).
func refuseDelegation(w http.ResponseWriter, reason, pol, format string, args ...any) {
	writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: "forbidden", Reason: reason, Policy: pol, Message: fmt.Sprintf(format, args...)})
}

// maxScopeEntries bounds a delegation's actions (identity's bound).
const maxScopeEntries = 64

// delegate is POST /v1/delegations: the caller (its bearer token; with
// X-MeshGuard-Delegation when it acts for a chain itself) hands a task to
// another agent explicitly. The hand-on checks (docs/policies.md#delegation) run
// first; the token never outlives the caller's token or the parent delegation,
// never widens the parent's scope, and caps how far the task may travel.
func (a *API) delegate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tok, delegation, msg := agentCredentials(r)
	if msg != "" {
		badRequest(w, "%s", msg)
		return
	}
	if tok == "" {
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing bearer token: send the agent's token in Authorization: Bearer")
		return
	}
	var req api.DelegationRequest
	if !decodeJSON(w, r, &req, MaxBodyBytes, false) {
		return
	}
	if msg := checkDelegationRequest(&req); msg != "" {
		badRequest(w, "%s", msg)
		return
	}

	v, err := a.cfg.Tokens.Verify(ctx, tok)
	switch {
	case errors.Is(err, identity.ErrAgentRevoked):
		writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: "unauthorized", Reason: engine.ReasonAgentRevoked, Message: "agent is revoked"})
		return
	case errors.Is(err, identity.ErrTokenRevoked):
		writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: "unauthorized", Reason: engine.ReasonTokenRevoked, Message: "token is revoked"})
		return
	case errors.Is(err, identity.ErrInvalidToken):
		writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: "unauthorized", Reason: engine.ReasonUnauthorized, Message: err.Error()})
		return
	case err != nil:
		a.log.Error("admin: /v1/delegations: verifying the caller", "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "MeshGuard could not verify the token; try again")
		return
	}
	caller := policy.Subject{ID: v.Agent.ID, Name: v.Agent.Name, Tier: v.Tier, Tags: v.Agent.Tags, Active: v.Agent.Active()}

	// The chain the caller acts for, if any.
	var (
		parent *identity.DelegationGrant
		chain  []policy.Subject
	)
	if raw := delegation; raw != "" {
		g, err := a.cfg.Verifier.VerifyDelegation(raw)
		switch {
		case errors.Is(err, identity.ErrTokenRevoked):
			refuseDelegation(w, policy.ReasonDelegationRevoked, "", "%v", err)
			return
		case err != nil:
			refuseDelegation(w, policy.ReasonDelegationActorMismatch, "", "the delegation token is not valid: %v", err)
			return
		}
		if g.Actor() != caller.ID {
			refuseDelegation(w, policy.ReasonDelegationActorMismatch, "", "the delegation token was issued to another agent, not to %q", caller.Name)
			return
		}
		parent = &g
		for _, id := range g.Delegators() {
			ag, err := a.cfg.Store.GetAgent(ctx, id)
			switch {
			case errors.Is(err, identity.ErrNotFound):
				chain = append(chain, policy.Subject{ID: id}) // inactive: delegation_revoked
			case err != nil:
				a.internalError(w, r, "looking up the delegation chain", err)
				return
			default:
				chain = append(chain, subjectOf(ag))
			}
		}
	}

	// Who takes the task.
	target, err := a.lookupAgent(ctx, req.Delegate)
	switch {
	case errors.Is(err, identity.ErrNotFound):
		badRequest(w, "delegate: no agent with id or name %q", req.Delegate)
		return
	case err != nil:
		a.internalError(w, r, "looking up the delegate", err)
		return
	case target.ID == caller.ID:
		badRequest(w, "delegate: an agent cannot delegate to itself")
		return
	case !target.Active():
		refuseDelegation(w, policy.ReasonDelegationRevoked, "", "the delegate %q is revoked", target.Name)
		return
	}

	// The hand-on checks: revoked, repeat, untrusted, not permitted, depth.
	set := a.cfg.Policies.Current()
	if hd := set.HandOff(chain, caller, subjectOf(target)); !hd.Allowed() {
		refuseDelegation(w, hd.Reason, hd.Policy, "delegating to %q: %s", target.Name, hd.Message)
		return
	}
	// delegators counts the agents the delegate will act for.
	delegators := len(chain) + 1
	maxChain := min(delegators+req.MaxDepth-1, policy.MaxDelegation)
	if parent != nil {
		if parent.MaxChain > 0 && delegators > parent.MaxChain {
			refuseDelegation(w, policy.ReasonDelegationDepth, "", "the parent delegation allows at most %d delegating agents; handing on would make %d", parent.MaxChain, delegators)
			return
		}
		if parent.MaxChain > 0 && maxChain > parent.MaxChain {
			refuseDelegation(w, policy.ReasonDelegationDepth, "", "maxDepth %d reaches further than the parent delegation allows (at most %d more hand-offs from here)", req.MaxDepth, parent.MaxChain-delegators+1)
			return
		}
		if parent.Scope != nil {
			for _, act := range req.Actions {
				if !anyMatch(parent.Scope, act) {
					refuseDelegation(w, policy.ReasonDelegationScope, "", "action %q is outside the parent delegation's scope [%s]", act, strings.Join(parent.Scope, ", "))
					return
				}
			}
		}
	}

	now := a.cfg.Now()
	ttl := req.TTL.D()
	if ttl == 0 {
		ttl = a.cfg.DelegationTTL
	}
	g := identity.DelegationGrant{Root: caller.ID, Actors: []string{target.ID}, Scope: req.Actions, MaxChain: maxChain, ExpiresAt: now.Add(ttl),
		// Void once the caller's token is revoked (or a parent's was).
		ByTokens: []string{v.Claims.ID}}
	if v.Claims.ExpiresAt.Before(g.ExpiresAt) {
		g.ExpiresAt = v.Claims.ExpiresAt
	}
	if parent != nil {
		g.ByTokens = append(append(make([]string, 0, len(parent.ByTokens)+1), parent.ByTokens...), v.Claims.ID)
		g.Root = parent.Root
		g.Actors = append(append(make([]string, 0, len(parent.Actors)+1), parent.Actors...), target.ID)
		if parent.ExpiresAt.Before(g.ExpiresAt) {
			g.ExpiresAt = parent.ExpiresAt
		}
	}
	token, minted, err := a.cfg.Issuer.Delegate(g)
	switch {
	case errors.Is(err, identity.ErrInvalidGrant):
		badRequest(w, "%s", err)
		return
	case err != nil:
		a.internalError(w, r, "minting the delegation token", err)
		return
	}
	a.log.Info("admin: delegation minted", "root", minted.Root, "actor", target.ID, "by", caller.ID, "jti", minted.ID, "expires_at", minted.ExpiresAt)
	writeJSON(w, http.StatusCreated, api.DelegationToken{
		Token: token, ExpiresAt: minted.ExpiresAt, Chain: append([]string{minted.Root}, minted.Actors...),
		Scope: minted.Scope, MaxChain: minted.MaxChain,
	})
}

// checkDelegationRequest validates the body and fills in defaults.
func checkDelegationRequest(req *api.DelegationRequest) string {
	switch {
	case req.Delegate == "":
		return "delegate: required (an agent id or name)"
	case len(req.Actions) == 0:
		return "actions: required (the action patterns the delegate may perform)"
	case len(req.Actions) > maxScopeEntries:
		return fmt.Sprintf("actions: more than %d", maxScopeEntries)
	case req.MaxDepth < 0 || req.MaxDepth > policy.MaxDelegation:
		return fmt.Sprintf("maxDepth: %d: expected 1 to %d", req.MaxDepth, policy.MaxDelegation)
	}
	for i, act := range req.Actions {
		if act == "" || len(act) > policy.MaxPatternLen || strings.ContainsAny(act, " \t\r\n") || (!strings.Contains(act, ":") && act != "*") {
			return fmt.Sprintf("actions[%d]: %q: expected an action pattern verb:resource (or *) without whitespace, at most %d bytes", i, act, policy.MaxPatternLen)
		}
	}
	if req.MaxDepth == 0 {
		req.MaxDepth = 1
	}
	return ""
}

// anyMatch reports whether pattern lies inside one of scope: a scope
// pattern that matches the pattern's text (its * taken literally) matches
// everything the pattern does.
func anyMatch(scope []string, pattern string) bool {
	for _, s := range scope {
		if policy.Match(s, pattern) {
			return true
		}
	}
	return false
}
