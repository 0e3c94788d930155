package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/ratelimit"
)

// TokenVerifier checks agent tokens (identity.CachedVerifier). The result
// is shared and read-only.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*identity.Verified, error)
}

// DelegationVerifier checks delegation tokens (identity.CachedVerifier).
type DelegationVerifier interface {
	VerifyDelegation(token string) (identity.DelegationGrant, error)
}

// Delegator mints delegation tokens (identity.Issuer).
type Delegator interface {
	Delegate(g identity.DelegationGrant) (string, identity.DelegationGrant, error)
}

// Agents looks agents up by id, by host and by SPIFFE ID (agentcache.Cache
// over the store).
type Agents interface {
	GetAgent(ctx context.Context, id string) (identity.Agent, error)
	AgentByHost(ctx context.Context, host string) (identity.Agent, error)
	AgentBySPIFFEID(ctx context.Context, id string) (identity.Agent, error)
}

// Policies supplies the policy set in force (policy.Loader).
type Policies interface {
	Current() *policy.Set
}

// Limiter counts requests (ratelimit.Memory, or a shared store).
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (ratelimit.Result, error)
}

// Observer is told of every Check's outcome: effect is "allow", "deny",
// or "error" for MeshGuard's own failure (telemetry.Metrics). It must be
// cheap: it runs on the Check path.
type Observer interface {
	Decided(source, effect string, took time.Duration)
}

// Recorder keeps the audit trail (audit.Writer). It may be nil: then
// nothing is recorded (tests, offline tools).
type Recorder interface {
	Write(ctx context.Context, r audit.Record) error
}

// Config wires an Engine. Every interface but Recorder is required.
type Config struct {
	Mode        Mode
	Tokens      TokenVerifier
	Delegations DelegationVerifier
	Delegator   Delegator
	Agents      Agents
	// Names finds agents by name for Delegate (the store); nil: Delegate
	// takes agent ids only.
	Names    AgentNames
	Policies Policies
	Limiter  Limiter
	Recorder Recorder
	// Tracer makes the spans of docs/tracing.md (meshguard.check and its
	// children). Nil: no spans; trace and span ids are still made.
	Tracer trace.Tracer
	// DenialTracer, if set, records a denial whose check span the
	// sampler dropped (TRACE_DENIALS=always): it samples every span (to a bound), and
	// WithSpanIDs gives that span the decision's trace and span ids, so
	// it is the one the audit record names. Both or neither.
	DenialTracer trace.Tracer
	WithSpanIDs  func(context.Context, trace.TraceID, trace.SpanID) context.Context
	// Observer, if set, is told of every decision and failure (metrics).
	Observer Observer
	// Routes map requests to actions, first match wins (docs/enforcement.md).
	Routes []Route
	// DelegationTTL bounds the lifetime of minted delegation tokens
	// (DefaultDelegationTTL if zero); they never outlive their parent.
	DelegationTTL time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Approvals keeps human approvals (the store); nil: a request whose
	// policy says approve fails closed (ErrInternal), except in audit mode.
	Approvals Approvals
	// ApprovalNotifier, if set, is told of each approval raised.
	ApprovalNotifier ApprovalNotifier
	// ApprovalPendingTTL is how long a raised approval waits for a person
	// (approval.DefaultPendingTTL if zero; APPROVAL_PENDING_TTL).
	ApprovalPendingTTL time.Duration
	// ApprovalArguments is the audit writer's rule for a call's arguments
	// (AUDIT_ARGUMENTS, AUDIT_REDACT): an approval shows them as the
	// trail records them.
	ApprovalArguments audit.ArgumentsConfig
	// Answer is what every rendered answer carries beyond what Envoy and
	// the upstream need (ANSWER_EXTRAS; answer.go). Zero: the default.
	Answer Answer
	// Random returns 16 bytes from crypto/rand for each id the engine
	// makes (ids.go); nil: crypto/rand.Read itself. The wasm filter
	// reads crypto/rand in bulk, where each read is a host call.
	Random func() [16]byte
}

// DefaultDelegationTTL is how long a minted delegation token lives at most.
const DefaultDelegationTTL = time.Hour

// Engine decides requests. It is safe for concurrent use and holds no
// per-request state.
type Engine struct {
	cfg    Config
	routes []compiledRoute
	// protocolRoutes: some route declares an agent protocol, so a POST
	// may be a JSON-RPC request (speaksJSONRPC); without one, no request
	// pays for the route lookup that answers it.
	protocolRoutes bool
	tracer         trace.Tracer   // nil: no spans (startCheck)
	shadowObs      ShadowObserver // cfg.Observer, when it counts shadow answers
}

// New checks cfg and compiles its routes.
func New(cfg Config) (*Engine, error) {
	switch {
	case cfg.Tokens == nil, cfg.Delegations == nil, cfg.Delegator == nil, cfg.Agents == nil, cfg.Policies == nil, cfg.Limiter == nil:
		return nil, errors.New("engine: Tokens, Delegations, Delegator, Agents, Policies and Limiter are required")
	case cfg.Mode == "":
		cfg.Mode = ModeEnforce
	case cfg.Mode != ModeEnforce && cfg.Mode != ModeAudit:
		return nil, fmt.Errorf("engine: mode %q (expected enforce or audit)", cfg.Mode)
	}
	if cfg.DelegationTTL <= 0 {
		cfg.DelegationTTL = DefaultDelegationTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ApprovalPendingTTL <= 0 {
		cfg.ApprovalPendingTTL = approval.DefaultPendingTTL
	}
	routes, err := compileRoutes(cfg.Routes)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, routes: routes, tracer: cfg.Tracer}
	e.shadowObs, _ = cfg.Observer.(ShadowObserver)
	for i := range routes {
		e.protocolRoutes = e.protocolRoutes || routes[i].proto != ""
	}
	return e, nil
}

// ErrInternal wraps MeshGuard's own failures (the store, the limiter, the
// signer). Adapters answer them with a gRPC Unavailable/Internal or a 503:
// never an allow.
var ErrInternal = errors.New("meshguard internal failure")

// Check decides one request. The returned error is non-nil only for
// MeshGuard's own failures (wrapping ErrInternal); every decision about the
// request itself, allow or deny, is in the Decision.
func (e *Engine) Check(ctx context.Context, r *Request) (d Decision, err error) {
	now := e.cfg.Now()
	d = Decision{Mode: e.cfg.Mode}
	ctx, span := e.open(ctx, r, &d, now)
	defer func() { e.close(span, r, &d, err, now) }()
	if err := e.decide(ctx, r, &d, now); err != nil {
		return Decision{}, err
	}
	if d.Effect == "" {
		d.Effect = "allow"
		if d.Status != 200 {
			d.Effect = "deny"
		}
	}
	d.Allowed = d.Effect == "allow" || e.cfg.Mode == ModeAudit
	if d.Effect == "deny" && !span.IsRecording() && e.cfg.DenialTracer != nil {
		e.recordDenial(r, &d, now, SpanCheck)
	}
	if e.cfg.Recorder != nil {
		if err := e.record(ctx, auditRecord(r, &d, e.cfg.Now().Sub(now))); err != nil {
			return Decision{}, err
		}
	}
	if d.raised != nil && e.cfg.ApprovalNotifier != nil {
		e.cfg.ApprovalNotifier.ApprovalRaised(ctx, *d.raised)
	}
	d.raised = nil
	return d, nil
}

// open makes d a decision of its own for r, made at now: its id, time,
// source and trace (r's, or a new one), and its span. Check and Reissue
// both start here and end in close, so what every decision carries and
// reports is written once.
func (e *Engine) open(ctx context.Context, r *Request, d *Decision, now time.Time) (context.Context, trace.Span) {
	e.traceOfDelegation(r)
	d.ID, d.Time, d.Source, d.TraceID = e.newID("dec_", 12, now), now, r.Source, r.TraceID
	if !edge.ValidTraceID(d.TraceID) {
		d.TraceID = e.newID("", 16, now)
	}
	return e.startCheck(ctx, r, d)
}

// close ends d's span and reports it to the Observer ("error" for a
// failure of MeshGuard's own).
func (e *Engine) close(span trace.Span, r *Request, d *Decision, err error, now time.Time) {
	endCheck(span, r, d, err)
	if e.cfg.Observer != nil {
		effect := d.Effect
		if err != nil {
			effect = "error"
		}
		e.cfg.Observer.Decided(string(r.Source), effect, e.cfg.Now().Sub(now))
	}
}

// record writes a decision's audit record, under its own span. A decision
// that cannot be recorded is not given: the audit trail promises every
// decision (docs/audit.md), so MeshGuard fails closed. Callers check
// that there is a Recorder first, and build no record when there is none.
func (e *Engine) record(ctx context.Context, rec audit.Record) error {
	as := e.child(ctx, SpanAudit)
	err := e.cfg.Recorder.Write(ctx, rec)
	if err != nil {
		as.RecordError(err)
		as.SetStatus(codes.Error, "audit write failed")
	}
	as.End()
	if err != nil {
		return internal("recording the decision", err)
	}
	return nil
}

// deny fills d with a denial and returns nil, so decide can `return
// d.deny(…)`.
func (d *Decision) deny(status int, reason, format string, args ...any) error {
	d.Status, d.Reason, d.Message, d.Effect = status, reason, fmt.Sprintf(format, args...), "deny"
	return nil
}

func internal(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrInternal, what, err)
}

// Refusal is the denial an adapter gives for input it does not hand to the
// engine (headers beyond the bounds, a CheckRequest without an HTTP
// request): rendered like the engine's own denials, so Envoy and the caller
// see the same headers and body either way, and a denial in every mode,
// because the bounds protect MeshGuard itself. It is not recorded.
func Refusal(r *Request, status int, reason, message string, now time.Time) Decision {
	d := Decision{
		ID: newID("dec_", 12, now), Effect: "deny", Status: status, Reason: reason, Message: message,
		Source: r.Source, TraceID: r.TraceID, Time: now,
	}
	if !edge.ValidTraceID(d.TraceID) {
		d.TraceID = newID("", 16, now)
	}
	return d
}
