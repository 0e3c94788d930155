// Package checkapi is the agents' HTTP decision API on the main port:
// POST /v1/check, the explicit enforcement point for SDKs and tools, and
// POST /v1/delegations, where an agent hands a task to another
// (docs/api.md). It is an adapter like extauthz and gateway: it reads the
// agent's credentials and the body, hands them to the engine and renders
// the engine's answer. It never decides a request itself, never mints a
// token itself, and holds no state: a request it cannot put to the engine
// is refused, never allowed.
package checkapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/internal/httpjson"
)

// MaxBodyBytes bounds the bodies of both endpoints (docs/api.md#limits).
const MaxBodyBytes = httpjson.MaxBodyBytes

// Engine decides requests and mints delegations (engine.Engine).
type Engine interface {
	Check(ctx context.Context, r *engine.Request) (engine.Decision, error)
	Delegate(ctx context.Context, r *engine.DelegateRequest) (engine.Delegation, error)
}

var _ Engine = (*engine.Engine)(nil)

// Mux is where routes are registered (httpjson.Router, which lists them
// for the credential tests and answers what none matches).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Approvals waits for a human approval to be decided
// (approvalapi.Service.Wait).
type Approvals interface {
	Wait(ctx context.Context, id string, limit time.Duration) (approval.Approval, error)
}

// API serves the two endpoints. Create it with New and Register it on the
// server's router.
type API struct {
	engine    Engine
	approvals Approvals // nil: Prefer: wait is ignored
	log       *slog.Logger
}

// WithApprovals lets POST /v1/check wait for a pending approval when asked
// with Prefer: wait=N (docs/api.md). Call it before Register.
func (a *API) WithApprovals(w Approvals) *API {
	a.approvals = w
	return a
}

// New returns the API over e; log (nil discards) gets one line per
// delegation minted and per engine failure, never a token.
func New(e Engine, log *slog.Logger) (*API, error) {
	if e == nil {
		return nil, errors.New("checkapi: an engine is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{engine: e, log: log}, nil
}

// Register registers POST /v1/check and POST /v1/delegations on m. Both
// read the agent's bearer token themselves: they take no admin token.
func (a *API) Register(m Mux) {
	m.Handle("POST /v1/check", http.HandlerFunc(a.check))
	m.Handle("POST /v1/delegations", http.HandlerFunc(a.delegate))
}

// agentCredentials reads an agent's token and delegation token as every
// enforcement point does: each header at most once, holding one value
// (edge.CheckCredential). A message means a 400: which of two tokens counts
// would be ambiguous.
func agentCredentials(r *http.Request) (token, delegation, msg string) {
	if msg := edge.CheckCredentialHeaders(r.Header); msg != "" {
		return "", "", msg
	}
	return edge.Bearer(r.Header.Get("Authorization")), r.Header.Get(api.HeaderDelegation), ""
}

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
		if d.ApprovalID != "" && d.Status == 403 {
			out.ApprovalID, out.ApprovalURL = d.ApprovalID, engine.ApprovalPath(d.ApprovalID)
		}
	}
	return out
}

// check is POST /v1/check: the explicit enforcement point for SDKs. The
// decision's own status is the answer's status, so SDKs branch on it.
func (a *API) check(w http.ResponseWriter, r *http.Request) {
	var req api.CheckRequest
	if !httpjson.DecodeJSON(w, r, &req, MaxBodyBytes, false) {
		return
	}
	if req.Action == "" {
		httpjson.BadRequest(w, "action: required (verb:resource)")
		return
	}
	tok, delegation, msg := agentCredentials(r)
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	var wait time.Duration
	if a.approvals != nil {
		var err error
		if wait, _, err = approvalapi.ParseWait(r, false); err != nil {
			httpjson.BadRequest(w, "%v", err)
			return
		}
	}
	tp := r.Header.Get("traceparent")
	decide := func() (engine.Decision, error) {
		er := engine.Request{
			Source: engine.SourceAPI, Token: tok, Delegation: delegation,
			Action: req.Action, Resource: req.Resource, Context: req.Context,
			SourceAddress: r.RemoteAddr,
		}
		er.SetTraceparent(tp)
		return a.engine.Check(r.Context(), &er)
	}
	d, err := decide()
	if err == nil && wait > 0 && d.Reason == engine.ReasonApprovalRequired && d.ApprovalID != "" {
		// One check is one trace: without the caller's trace, the decision
		// after the wait continues the first one's, whose trace the
		// approval and its answer are recorded under.
		if _, ok := edge.ParseTraceparent(tp); !ok && d.TraceID != "" && d.SpanID != "" {
			tp = edge.Traceparent{TraceID: d.TraceID, SpanID: d.SpanID, Sampled: d.TraceSampled}.String()
		}
		d, err = a.waitAndDecide(w, r, d, wait, decide)
	}
	if err != nil {
		if r.Context().Err() != nil {
			return // the caller left while waiting: nobody reads an answer
		}
		a.log.Error("checkapi: /v1/check: MeshGuard could not decide", "error", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "unavailable", "%s", engine.Unavailable(err))
		return
	}
	for _, h := range d.DecisionHeaders() { // the answer is the decision
		w.Header().Set(h.Name, h.Value)
	}
	status := http.StatusOK
	if !d.Allowed {
		status = d.Status
	}
	httpjson.WriteJSON(w, status, decisionBody(&d))
}

// waitAndDecide holds a check whose answer is approval_required until its
// approval is decided or wait ends, then decides the request again: a
// granted approval is used by this very check (once). When the approval
// is still pending, or too many callers wait already, the first decision
// stands (without Preference-Applied when it did not wait).
func (a *API) waitAndDecide(w http.ResponseWriter, r *http.Request, d engine.Decision, wait time.Duration,
	decide func() (engine.Decision, error)) (engine.Decision, error) {
	approvalapi.HoldOpen(w, wait)
	ap, err := a.approvals.Wait(r.Context(), d.ApprovalID, wait)
	switch {
	case errors.Is(err, approvalapi.ErrBusy):
		return d, nil
	case err != nil:
		return d, err
	}
	w.Header().Set(api.HeaderPreferenceApplied, approvalapi.Applied(wait))
	if ap.Status == approval.Pending {
		return d, nil
	}
	return decide()
}

// delegate is POST /v1/delegations: the caller (its bearer token; with
// X-MeshGuard-Delegation when it acts for a chain itself) hands a task to
// another agent explicitly. The engine decides, mints and records
// (Engine.Delegate); this adapter decodes, validates and renders.
func (a *API) delegate(w http.ResponseWriter, r *http.Request) {
	tok, delegation, msg := agentCredentials(r)
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	var req api.DelegationRequest
	if !httpjson.DecodeJSON(w, r, &req, MaxBodyBytes, false) {
		return
	}
	dr := engine.DelegateRequest{
		Caller:   engine.Request{Token: tok, Delegation: delegation, SourceAddress: r.RemoteAddr},
		Delegate: req.Delegate, Actions: req.Actions, MaxDepth: req.MaxDepth, TTL: req.TTL.D(),
	}
	// A request the engine refuses as malformed is refused there, not
	// here: every attempt past the body's decoding leaves its audit record
	// (docs/audit.md#delegations).
	dr.Caller.SetTraceparent(r.Header.Get("traceparent"))
	out, err := a.engine.Delegate(r.Context(), &dr)
	if err != nil {
		a.log.Error("checkapi: /v1/delegations: MeshGuard could not decide", "error", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "unavailable", "%s", engine.Unavailable(err))
		return
	}
	if !out.Allowed {
		reason := out.Reason
		if reason == engine.ReasonBadRequest {
			reason = "" // as the body's own 400s: the error code says it
		}
		// The refusal is recorded under the caller's trace: say which, as
		// a check's denial does.
		w.Header().Set(engine.HeaderTraceID, out.TraceID)
		httpjson.WriteJSON(w, out.Status, api.ErrorBody{Error: out.ErrorCode(), Reason: reason, Policy: out.Policy, Message: out.Message,
			TraceID: out.TraceID, DecisionID: out.ID})
		return
	}
	g := out.Grant
	a.log.Info("checkapi: delegation minted", "root", g.Root, "actor", out.TargetAgent, "by", out.AgentID, "jti", g.ID, "expires_at", g.ExpiresAt, "decision_id", out.ID)
	httpjson.WriteJSON(w, http.StatusCreated, api.DelegationToken{
		Token: out.Delegation, ExpiresAt: g.ExpiresAt, Chain: append([]string{g.Root}, g.Actors...),
		Scope: g.Scope, MaxChain: g.MaxChain,
	})
}
