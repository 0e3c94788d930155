package approvalapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/internal/httpjson"
)

// MinAdminTokenLen is the shortest admin token NewAPI accepts (as admin's).
const MinAdminTokenLen = 16

// Tokens verifies agent tokens as the engine does (identity.CachedVerifier):
// a revoked agent or token does not verify.
type Tokens interface {
	Verify(ctx context.Context, token string) (*identity.Verified, error)
}

// Mux is where routes are registered (httpjson.Router).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// API serves the approval endpoints. Create it with NewAPI.
type API struct {
	svc       *Service
	tokens    Tokens
	adminHash [sha256.Size]byte
	log       *slog.Logger
}

// NewAPI serves svc; tokens authenticates agents, adminToken the admin.
func NewAPI(svc *Service, tokens Tokens, adminToken string, log *slog.Logger) (*API, error) {
	if svc == nil || tokens == nil {
		return nil, errors.New("approvalapi: a service and a token verifier are required")
	}
	if len(adminToken) < MinAdminTokenLen {
		return nil, fmt.Errorf("approvalapi: the admin token must be at least %d characters", MinAdminTokenLen)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{svc: svc, tokens: tokens, adminHash: sha256.Sum256([]byte(adminToken)), log: log}, nil
}

// Register registers GET /v1/approvals/{id} (the agent that asked, or the
// admin token) and the admin endpoints (the admin token only).
func (a *API) Register(m Mux) {
	m.Handle("GET /v1/approvals/{id}", http.HandlerFunc(a.follow))
	m.Handle("GET /admin/approvals", a.requireAdmin(a.list))
	m.Handle("GET /admin/approvals/{id}", a.requireAdmin(a.get))
	m.Handle("POST /admin/approvals/{id}/approve", a.requireAdmin(func(w http.ResponseWriter, r *http.Request) { a.decide(w, r, true) }))
	m.Handle("POST /admin/approvals/{id}/deny", a.requireAdmin(func(w http.ResponseWriter, r *http.Request) { a.decide(w, r, false) }))
}

// isAdmin compares the admin token in constant time (hashes of both
// sides: the same time whatever the guess's length).
func (a *API) isAdmin(tok string) bool {
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], a.adminHash[:]) == 1
}

// requireAdmin is admin.API's guard: the admin token in X-Admin-Token; an
// agent's bearer token alone is told it knocked on the wrong door.
func (a *API) requireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get(api.HeaderAdminToken)
		switch {
		case tok == "" && edge.Bearer(r.Header.Get("Authorization")) != "":
			httpjson.WriteJSON(w, http.StatusForbidden, api.ErrorBody{Error: "forbidden", Reason: api.ReasonAdminTokenRequired,
				Message: "agent tokens cannot use the admin API; send the admin token in X-Admin-Token"})
		case tok == "":
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "missing admin token: send it in X-Admin-Token")
		case !a.isAdmin(tok):
			a.log.Warn("approvals: wrong admin token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "invalid admin token")
		default:
			h(w, r)
		}
	})
}

// follow is GET /v1/approvals/{id}: the agent whose request raised the
// approval, or the admin token; with a wait, a long poll. Any other agent,
// or an unknown id, gets 404: whether an id exists is not told.
func (a *API) follow(w http.ResponseWriter, r *http.Request) {
	admin := false
	agentID := ""
	if tok := r.Header.Get(api.HeaderAdminToken); tok != "" {
		if !a.isAdmin(tok) {
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "invalid admin token")
			return
		}
		admin = true
	} else {
		if msg := edge.CheckCredentialHeaders(r.Header); msg != "" {
			httpjson.BadRequest(w, "%s", msg)
			return
		}
		tok := edge.Bearer(r.Header.Get("Authorization"))
		if tok == "" {
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "missing agent token: send it in Authorization: Bearer")
			return
		}
		v, err := a.tokens.Verify(r.Context(), tok)
		switch {
		case errors.Is(err, identity.ErrAgentRevoked), errors.Is(err, identity.ErrTokenRevoked), errors.Is(err, identity.ErrInvalidToken):
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "%v", err)
			return
		case err != nil:
			a.unavailable(w, "verifying the agent token", err)
			return
		}
		agentID = v.Agent.ID
	}
	wait, prefer, err := ParseWait(r, true)
	if err != nil {
		httpjson.BadRequest(w, "%v", err)
		return
	}
	id := r.PathValue("id")
	ap, err := a.svc.Get(r.Context(), id)
	if err == nil && !admin && ap.AgentID != agentID {
		err = approval.ErrNotFound
	}
	if err == nil && wait > 0 {
		HoldOpen(w, wait)
		ap, err = a.svc.Wait(r.Context(), id, wait)
		if errors.Is(err, ErrBusy) {
			w.Header().Set("Retry-After", "1")
			httpjson.WriteError(w, http.StatusServiceUnavailable, "unavailable", "too many callers wait for approvals on this server; retry, or ask without a wait")
			return
		}
		if prefer && err == nil {
			w.Header().Set(api.HeaderPreferenceApplied, Applied(wait))
		}
	}
	switch {
	case errors.Is(err, approval.ErrNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no approval %.64q", id)
	case r.Context().Err() != nil:
		// The caller left: nobody reads an answer.
	case err != nil:
		a.unavailable(w, "reading the approval", err)
	case admin:
		httpjson.WriteJSON(w, http.StatusOK, Full(ap))
	default:
		httpjson.WriteJSON(w, http.StatusOK, Public(ap))
	}
}

func (a *API) unavailable(w http.ResponseWriter, what string, err error) {
	a.log.Error("approvals: "+what, "error", err)
	httpjson.WriteError(w, http.StatusServiceUnavailable, "unavailable", "MeshGuard could not answer: %s failed", what)
}

// list is GET /admin/approvals?status=&agent=&limit=&before=.
func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k, vs := range q {
		switch k {
		case "status", "agent", "limit", "before":
			if len(vs) != 1 {
				httpjson.BadRequest(w, "%s: give it once", k)
				return
			}
		default:
			httpjson.BadRequest(w, "unknown parameter %.32q (expected status, agent, limit, before)", k)
			return
		}
	}
	f := approval.Filter{Status: approval.Status(q.Get("status")), AgentID: q.Get("agent"), Before: q.Get("before")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			httpjson.BadRequest(w, "limit: expected a whole number from 1 to %d", approval.MaxList)
			return
		}
		f.Limit = n
	}
	if err := f.Validate(); err != nil {
		httpjson.BadRequest(w, "%v", err)
		return
	}
	got, err := a.svc.List(r.Context(), f)
	if err != nil {
		a.unavailable(w, "listing approvals", err)
		return
	}
	out := api.ApprovalList{Approvals: make([]api.Approval, 0, len(got))}
	for _, ap := range got {
		out.Approvals = append(out.Approvals, Full(ap))
	}
	if len(got) == f.Limit {
		out.Next = got[len(got)-1].ID
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// get is GET /admin/approvals/{id}: everything.
func (a *API) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ap, err := a.svc.Get(r.Context(), id)
	switch {
	case errors.Is(err, approval.ErrNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no approval %.64q", id)
	case err != nil:
		a.unavailable(w, "reading the approval", err)
	default:
		httpjson.WriteJSON(w, http.StatusOK, Full(ap))
	}
}

// decide is POST /admin/approvals/{id}/approve and …/deny.
func (a *API) decide(w http.ResponseWriter, r *http.Request, approve bool) {
	var body api.ApprovalDecision
	if !httpjson.DecodeJSON(w, r, &body, httpjson.MaxBodyBytes, false) {
		return
	}
	id := r.PathValue("id")
	if !approval.ValidID(id) {
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no approval %.64q", id)
		return
	}
	ap, err := a.svc.Decide(r.Context(), approval.Decision{ID: id, Approve: approve, By: body.By, Reason: body.Reason}, SourceAdmin)
	switch {
	case err == nil:
		httpjson.WriteJSON(w, http.StatusOK, Full(ap))
	case errors.Is(err, approval.ErrInvalid):
		httpjson.BadRequest(w, "%v", err)
	case errors.Is(err, approval.ErrNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no approval %.64q", id)
	case errors.Is(err, approval.ErrExpired):
		httpjson.WriteJSON(w, http.StatusConflict, api.ApprovalConflict{Error: api.ErrorApprovalExpired,
			Message: fmt.Sprintf("approval %s expired before it was decided; the agent's next retry asks again", id), Status: string(approval.Expired)})
	case errors.Is(err, approval.ErrNotPending):
		status := "decided"
		if cur, gerr := a.svc.Get(r.Context(), id); gerr == nil {
			status = string(cur.Status)
		}
		httpjson.WriteJSON(w, http.StatusConflict, api.ApprovalConflict{Error: api.ErrorApprovalNotPending,
			Message: fmt.Sprintf("approval %s is %s: only a pending approval can be decided", id, status), Status: status})
	case errors.Is(err, ErrUnrecorded):
		httpjson.WriteError(w, http.StatusInternalServerError, "internal", "approval %s is %s, but its audit record could not be written (see the server's log)", id, ap.Status)
	default:
		a.unavailable(w, "deciding the approval", err)
	}
}

// Public is what the agent that asked reads of its approval: never the
// arguments, query, context or params, nor who decided.
func Public(a approval.Approval) api.Approval {
	out := api.Approval{
		ID: a.ID, Status: string(a.Status), Action: a.Action, Resource: a.Resource, AgentID: a.AgentID,
		CreatedAt: a.CreatedAt.UTC(), ExpiresAt: a.ExpiresAt.UTC(), Reason: a.DecisionReason, TraceID: a.TraceID,
	}
	if !a.DecidedAt.IsZero() {
		t := a.DecidedAt.UTC()
		out.DecidedAt = &t
	}
	return out
}

// Full is everything the admin reads of an approval.
func Full(a approval.Approval) api.Approval {
	out := Public(a)
	out.DecidedBy, out.AgentName, out.Chain, out.Method, out.Name = a.DecidedBy, a.AgentName, a.Chain, a.Method, a.Name
	out.Arguments, out.ArgumentsDigest, out.Policy, out.Rule, out.Approvers = a.Arguments, a.ArgumentsDigest, a.Policy, a.Rule, a.Approvers
	out.DecisionID = a.DecisionID
	out.Query, out.Context, out.Params, out.ParamsDigest, out.Omitted = a.Query, a.Context, a.Params, a.ParamsDigest, a.Omitted
	uses := a.Uses
	out.Uses = &uses
	if a.TTL > 0 {
		out.TTL = a.TTL.String()
	}
	return out
}
