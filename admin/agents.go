package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// lookupAgent finds an agent by id or name: names may not start with
// "agent_", so the two cannot be confused.
func (a *API) lookupAgent(ctx context.Context, key string) (identity.Agent, error) {
	if strings.HasPrefix(key, identity.IDPrefix) {
		return a.cfg.Store.GetAgent(ctx, key)
	}
	return a.cfg.Store.GetAgentByName(ctx, key)
}

// agentFromPath resolves {id}; it answers the request itself when it fails.
func (a *API) agentFromPath(w http.ResponseWriter, r *http.Request) (identity.Agent, bool) {
	key := r.PathValue("id")
	ag, err := a.lookupAgent(r.Context(), key)
	if errors.Is(err, identity.ErrNotFound) {
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no agent with id or name %q", key)
		return identity.Agent{}, false
	}
	if err != nil {
		a.internalError(w, r, "looking up the agent", err)
		return identity.Agent{}, false
	}
	return ag, true
}

// tokenTTL checks a requested token lifetime against the keyring's bounds,
// before anything is written. Zero asks for DefaultTokenTTL, and when that
// is zero too, the Issuer's default.
func (a *API) tokenTTL(ttl api.Duration) (time.Duration, string) {
	d := ttl.D()
	if d == 0 {
		return a.cfg.DefaultTokenTTL, ""
	}
	if limit := a.cfg.Keys.Keyring().MaxTTL(); d < time.Second || d > limit {
		return 0, "ttl: " + d.String() + " is outside 1s.." + limit.String()
	}
	return d, ""
}

// agentChanged drops every cached view of agent id.
func (a *API) agentChanged(id string) {
	a.cfg.Tokens.InvalidateAgent(id)
	a.cfg.Agents.Invalidate()
	a.changed(ChangeAgents)
}

func parseTier(field, s string) (trust.Tier, string) {
	t, err := trust.Parse(s)
	if err != nil {
		return 0, field + ": " + err.Error()
	}
	return t, ""
}

func (a *API) createAgent(w http.ResponseWriter, r *http.Request) {
	var req api.CreateAgentRequest
	if !httpjson.DecodeJSON(w, r, &req, MaxBodyBytes, false) {
		return
	}
	tier := trust.Untrusted
	if req.TrustTier != "" {
		var msg string
		if tier, msg = parseTier("trustTier", req.TrustTier); msg != "" {
			httpjson.BadRequest(w, "%s", msg)
			return
		}
	}
	ttl, msg := a.tokenTTL(req.TTL)
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	ag := identity.Agent{
		ID: identity.NewAgentID(), Name: req.Name, TrustTier: tier, Tags: req.Tags, Hosts: req.Hosts,
		SPIFFEIDs: req.SPIFFEIDs, Metadata: req.Metadata, Status: identity.StatusActive,
	}
	if err := ag.Validate(); err != nil {
		httpjson.BadRequest(w, "%s", err)
		return
	}
	// The token is minted before the agent is stored, so a token that
	// cannot be minted (tags too long for a token) leaves no agent behind.
	// A token for an agent that then fails to be stored is discarded.
	tok, claims, ok := a.issue(w, r, ag, ttl)
	if !ok {
		return
	}
	a.agentMu.Lock()
	created, err := a.cfg.Store.CreateAgent(r.Context(), ag)
	a.agentMu.Unlock()
	if err != nil {
		a.storeError(w, r, "creating the agent", err)
		return
	}
	a.agentChanged(created.ID)
	a.log.Info("admin: agent created", "agent_id", created.ID, "agent_name", created.Name, "tier", created.TrustTier.String())
	w.Header().Set("Location", "/admin/agents/"+created.ID)
	httpjson.WriteJSON(w, http.StatusCreated, api.AgentWithToken{Agent: agentBody(created), Token: tok, ExpiresAt: claims.ExpiresAt})
}

func (a *API) listAgents(w http.ResponseWriter, r *http.Request) {
	q, msg := queryParams(r, "trust", "status", "tag", "after", "limit")
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	f := store.AgentFilter{Status: identity.Status(q["status"]), Tag: q["tag"], After: q["after"]}
	if s := q["trust"]; s != "" {
		t, msg := parseTier("trust", s)
		if msg != "" {
			httpjson.BadRequest(w, "%s", msg)
			return
		}
		f.Tier = &t
	}
	if s := q["limit"]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			httpjson.BadRequest(w, "limit: %q is not a whole number", s)
			return
		}
		f.Limit = n
	}
	agents, err := a.cfg.Store.ListAgents(r.Context(), f)
	if err != nil {
		a.storeError(w, r, "listing agents", err)
		return
	}
	out := api.AgentList{Agents: agentBodies(agents)}
	limit := f.Limit
	if limit == 0 {
		limit = store.DefaultListLimit
	}
	if len(agents) == limit {
		out.Next = agents[len(agents)-1].Name
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getAgent(w http.ResponseWriter, r *http.Request) {
	if ag, ok := a.agentFromPath(w, r); ok {
		httpjson.WriteJSON(w, http.StatusOK, agentBody(ag))
	}
}

func (a *API) updateAgent(w http.ResponseWriter, r *http.Request) {
	var p api.AgentPatch
	if !httpjson.DecodeJSON(w, r, &p, MaxBodyBytes, false) {
		return
	}
	if p.Name == nil && p.TrustTier == nil && p.Tags == nil && p.Hosts == nil && p.SPIFFEIDs == nil && p.Metadata == nil {
		httpjson.BadRequest(w, "nothing to update: give one or more of name, trustTier, tags, hosts, spiffeIds, metadata")
		return
	}
	a.agentMu.Lock()
	defer a.agentMu.Unlock()
	ag, ok := a.agentFromPath(w, r)
	if !ok {
		return
	}
	// A revoked agent's record stays as it was revoked: its updatedAt is
	// when it stopped being active, which the wasm filter's audit intake
	// reads to accept records stamped before it.
	if !ag.Active() {
		httpjson.WriteError(w, http.StatusConflict, "conflict", "agent %q is revoked; a revoked agent is not edited", ag.Name)
		return
	}
	if p.Name != nil {
		ag.Name = *p.Name
	}
	if p.TrustTier != nil {
		t, msg := parseTier("trustTier", *p.TrustTier)
		if msg != "" {
			httpjson.BadRequest(w, "%s", msg)
			return
		}
		ag.TrustTier = t
	}
	if p.Tags != nil {
		ag.Tags = *p.Tags
	}
	if p.Hosts != nil {
		ag.Hosts = *p.Hosts
	}
	if p.SPIFFEIDs != nil {
		ag.SPIFFEIDs = *p.SPIFFEIDs
	}
	if p.Metadata != nil {
		ag.Metadata = *p.Metadata
	}
	updated, err := a.cfg.Store.UpdateAgent(r.Context(), ag)
	if err != nil {
		a.storeError(w, r, "updating the agent", err)
		return
	}
	a.agentChanged(updated.ID)
	a.log.Info("admin: agent updated", "agent_id", updated.ID, "agent_name", updated.Name, "tier", updated.TrustTier.String())
	httpjson.WriteJSON(w, http.StatusOK, agentBody(updated))
}

func (a *API) revokeAgent(w http.ResponseWriter, r *http.Request) {
	a.agentMu.Lock()
	defer a.agentMu.Unlock()
	ag, ok := a.agentFromPath(w, r)
	if !ok {
		return
	}
	if err := a.cfg.Store.RevokeAgent(r.Context(), ag.ID); err != nil {
		a.storeError(w, r, "revoking the agent", err)
		return
	}
	// Caches first: from here on no replica-local path accepts its tokens.
	a.agentChanged(ag.ID)
	revoked, err := a.cfg.Store.GetAgent(r.Context(), ag.ID)
	if err != nil {
		a.storeError(w, r, "reading the revoked agent", err)
		return
	}
	a.log.Info("admin: agent revoked", "agent_id", ag.ID, "agent_name", ag.Name)
	httpjson.WriteJSON(w, http.StatusOK, agentBody(revoked))
}

func (a *API) issueToken(w http.ResponseWriter, r *http.Request) {
	var req api.TokenRequest
	if !httpjson.DecodeJSON(w, r, &req, MaxBodyBytes, true) {
		return
	}
	ttl, msg := a.tokenTTL(req.TTL)
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	ag, ok := a.agentFromPath(w, r)
	if !ok {
		return
	}
	if !ag.Active() {
		httpjson.WriteError(w, http.StatusConflict, "conflict", "agent %q is revoked; a revoked agent gets no tokens", ag.Name)
		return
	}
	tok, claims, ok := a.issue(w, r, ag, ttl)
	if !ok {
		return
	}
	a.log.Info("admin: token issued", "agent_id", ag.ID, "agent_name", ag.Name, "jti", claims.ID, "expires_at", claims.ExpiresAt)
	httpjson.WriteJSON(w, http.StatusOK, api.Token{AgentID: ag.ID, Token: tok, ExpiresAt: claims.ExpiresAt})
}

// issue mints a token for ag, answering the request itself when it cannot:
// 400 for an agent or lifetime the token cannot carry, 500 otherwise.
func (a *API) issue(w http.ResponseWriter, r *http.Request, ag identity.Agent, ttl time.Duration) (string, identity.Claims, bool) {
	tok, claims, err := a.cfg.Issuer.Issue(ag, ttl)
	switch {
	case errors.Is(err, identity.ErrInvalidAgent), errors.Is(err, identity.ErrInvalidTTL):
		httpjson.BadRequest(w, "%s", err)
		return "", identity.Claims{}, false
	case err != nil:
		a.internalError(w, r, "issuing the token", err)
		return "", identity.Claims{}, false
	}
	return tok, claims, true
}
