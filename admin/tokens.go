package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/httpjson"
)

// Revocations serves /admin/tokens/*: revoking one agent token.
type Revocations struct {
	// Store keeps the revocations (store.SQLite, store.Postgres).
	Store RevocationStore
	// List is the verifier's revocation list (identity.RevokedSet): a
	// revocation stored is added to it at once, so this replica refuses
	// the token from its next request on. Other replicas learn of it
	// through the store's change feed.
	List interface {
		Add(identity.RevokedToken) error
	}
}

// RevocationStore stores token revocations.
type RevocationStore interface {
	RevokeToken(ctx context.Context, r identity.RevokedToken) (identity.RevokedToken, bool, error)
	ListRevokedTokens(ctx context.Context, after string, limit int) ([]identity.RevokedToken, error)
}

// Revoked tokens per page of GET /admin/tokens/revoked.
const (
	defaultRevokedPage = 100
	maxRevokedPage     = 1000
)

// revokeToken is POST /admin/tokens/revoke. The token in the body is read
// for its jti, sub and exp and forgotten: it is never logged, stored or
// echoed.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) {
	var req api.RevokeTokenRequest
	if !httpjson.DecodeJSON(w, r, &req, MaxBodyBytes, false) {
		return
	}
	var rt identity.RevokedToken
	switch {
	case req.Token != "" && (req.JTI != "" || req.AgentID != ""):
		httpjson.BadRequest(w, "give token, or jti and agentId, not both")
		return
	case req.Token != "":
		var err error
		if rt, err = a.cfg.Verifier.ToRevoke(req.Token); err != nil {
			// The message names what is wrong, never the token.
			httpjson.BadRequest(w, "token: not an agent token MeshGuard signed: %s", err)
			return
		}
	case req.JTI == "" && req.AgentID == "":
		httpjson.BadRequest(w, "give the token to revoke, or its jti and agentId")
		return
	case !identity.ValidJTI(req.JTI):
		httpjson.BadRequest(w, "jti: expected 1 to 256 visible ASCII characters (a token's jti claim)")
		return
	case !identity.ValidAgentID(req.AgentID):
		httpjson.BadRequest(w, "agentId: expected an agent id (%s...), the token's sub claim", identity.IDPrefix)
		return
	default:
		if _, err := a.cfg.Store.GetAgent(r.Context(), req.AgentID); err != nil {
			a.storeError(w, r, "looking up the agent", err)
			return
		}
		// Without the token its exp is unknown: the latest a token
		// accepted now could have.
		var err error
		if rt, err = a.cfg.Verifier.ToRevokeByJTI(req.JTI, req.AgentID); err != nil {
			httpjson.BadRequest(w, "%s", err)
			return
		}
	}
	rt.Reason = req.Reason
	stored, created, err := a.cfg.Revocations.Store.RevokeToken(r.Context(), rt)
	switch {
	case errors.Is(err, identity.ErrInvalidRevocation):
		httpjson.BadRequest(w, "%s", err)
		return
	case errors.Is(err, identity.ErrTooManyRevocations):
		httpjson.WriteError(w, http.StatusConflict, "conflict", "%s; revoke the agent instead (DELETE /admin/agents/{id})", err)
		return
	case err != nil:
		a.storeError(w, r, "revoking the token", err)
		return
	}
	// Stored: from here on this replica refuses it, whichever path the
	// request takes. A list that cannot take it (full) fails the call, so
	// the operator does not believe a token dead that this replica takes.
	if err := a.cfg.Revocations.List.Add(stored); err != nil {
		a.internalError(w, r, "adding the revocation to the list in force", err)
		return
	}
	a.cfg.Tokens.InvalidateTokenID(stored.JTI)
	// The wasm filter's configuration carries the revoked tokens.
	a.changed(ChangeAgents)
	a.log.Info("admin: token revoked", "agent_id", stored.AgentID, "jti", stored.JTI, "expires_at", stored.ExpiresAt, "created", created)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpjson.WriteJSON(w, status, api.RevokedToken{Revocation: revocationBody(stored), Created: created})
}

// listRevokedTokens is GET /admin/tokens/revoked.
func (a *API) listRevokedTokens(w http.ResponseWriter, r *http.Request) {
	q, msg := queryParams(r, "after", "limit")
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	limit := defaultRevokedPage
	if s := q["limit"]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxRevokedPage {
			httpjson.BadRequest(w, "limit: %q: expected a whole number from 1 to %d", s, maxRevokedPage)
			return
		}
		limit = n
	}
	list, err := a.cfg.Revocations.Store.ListRevokedTokens(r.Context(), q["after"], limit)
	if err != nil {
		a.storeError(w, r, "listing revoked tokens", err)
		return
	}
	out := api.RevokedTokenList{Tokens: revocationBodies(list)}
	if len(list) == limit {
		out.Next = list[len(list)-1].JTI
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}
