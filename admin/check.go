package admin

import (
	"net/http"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/engine"
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

// delegate is POST /v1/delegations: the caller (its bearer token; with
// X-MeshGuard-Delegation when it acts for a chain itself) hands a task to
// another agent explicitly. The engine decides, mints and records
// (Engine.Delegate); this adapter decodes, validates and renders.
func (a *API) delegate(w http.ResponseWriter, r *http.Request) {
	tok, delegation, msg := agentCredentials(r)
	if msg != "" {
		badRequest(w, "%s", msg)
		return
	}
	var req api.DelegationRequest
	if !decodeJSON(w, r, &req, MaxBodyBytes, false) {
		return
	}
	dr := engine.DelegateRequest{
		Caller:   engine.Request{Token: tok, Delegation: delegation, SourceAddress: r.RemoteAddr},
		Delegate: req.Delegate, Actions: req.Actions, MaxDepth: req.MaxDepth, TTL: req.TTL.D(),
	}
	if err := dr.Validate(); err != nil {
		badRequest(w, "%s", err)
		return
	}
	dr.Caller.SetTraceparent(r.Header.Get("traceparent"))
	out, err := a.cfg.Engine.Delegate(r.Context(), &dr)
	if err != nil {
		a.log.Error("admin: /v1/delegations: MeshGuard could not decide", "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "%s", engine.Unavailable(err))
		return
	}
	if !out.Allowed {
		reason := out.Reason
		if reason == engine.ReasonBadRequest {
			reason = "" // as the body's own 400s: the error code says it
		}
		writeJSON(w, out.Status, api.ErrorBody{Error: out.ErrorCode(), Reason: reason, Policy: out.Policy, Message: out.Message})
		return
	}
	g := out.Grant
	a.log.Info("admin: delegation minted", "root", g.Root, "actor", out.TargetAgent, "by", out.AgentID, "jti", g.ID, "expires_at", g.ExpiresAt, "decision_id", out.ID)
	writeJSON(w, http.StatusCreated, api.DelegationToken{
		Token: out.Delegation, ExpiresAt: g.ExpiresAt, Chain: append([]string{g.Root}, g.Actors...),
		Scope: g.Scope, MaxChain: g.MaxChain,
	})
}
