package engine

import (
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

// Source names the enforcement point a request came through; it is recorded
// with every decision.
type Source string

// The enforcement points (docs/enforcement.md).
const (
	SourceExtAuthzGRPC Source = "ext_authz-grpc"
	SourceExtAuthzHTTP Source = "ext_authz-http"
	SourceGateway      Source = "gateway"
	SourceAPI          Source = "api"
	SourceWasm         Source = "wasm"
)

// Mode is enforce or audit (dry run: decide and record, but allow).
type Mode string

// Modes.
const (
	ModeEnforce Mode = "enforce"
	ModeAudit   Mode = "audit"
)

// Request is one authorization question, as an adapter extracted it. Strings
// are raw input: the engine validates and bounds them.
type Request struct {
	Source Source

	// Token is the agent's bearer credential (without "Bearer ").
	Token string
	// Delegation is the X-MeshGuard-Delegation token, if any.
	Delegation string
	// Principal is the caller's peer identity as the proxy or the TLS
	// stack verified it: the SPIFFE ID of its mTLS client certificate
	// (Envoy's source.principal, the gateway's verified client
	// certificate). Adapters set it only from what was verified, never
	// from a request header. A principal bound to an agent is that agent
	// without a token; with a token, the two must agree.
	Principal string

	// The HTTP request being authorized (ext_authz, gateway, wasm).
	Method string
	Host   string // :authority / Host, possibly with a port
	Path   string // as received, possibly with a query string

	// Headers are the request's own headers, for the policies' header.*
	// context keys (ext_authz, gateway, wasm). Credentials are read from
	// Token and Delegation, never from here.
	Headers Headers

	// RouteAction is an action set by the proxy's route configuration
	// (per-route context_extensions pushed by MeshGuard's xDS): a route
	// mapping, which wins over the config's routes.
	RouteAction string
	// RouteProtocol and RouteService: the proxy's route declares an agent
	// protocol spoken by the named service (per-route context_extensions
	// pushed by MeshGuard's xDS for a catalogue service with protocol:),
	// so the action is read from the request (docs/mcp.md). A RouteAction
	// wins over it; it wins over the config's routes.
	RouteProtocol agentproto.Protocol
	RouteService  string
	// Body is the request body as the upstream receives it, for a route
	// that declares a protocol; nil when the enforcement point was not
	// given it. Adapters bound it (agentproto.MaxBody) and never hand on
	// a prefix of a larger body.
	Body []byte
	// BodyError says the adapter could not take the whole body the
	// upstream receives (larger than agentproto.MaxBody, marked partial by
	// the proxy, or disagreeing with Content-Length): a route that reads
	// the body refuses the request with it (400, recorded), never deciding
	// on what it has; any other route ignores it, as it ignores Body.
	BodyError error
	// MinTier is the lowest effective tier the route admits (the
	// catalogue's minTier, pushed per route by MeshGuard's xDS); the zero
	// value, untrusted, admits every agent.
	MinTier trust.Tier

	// What the caller states, read only for SourceAPI (POST /v1/check,
	// the cooperative decision API): the action, the resource and the
	// context as given. Every other source sees the real request, and the
	// engine derives all three from it, so a caller cannot choose what is
	// decided independently of what the upstream receives.
	Action   string
	Resource string
	Context  map[string]any

	// SourceAddress is the caller's address (for audit and per-IP limits).
	SourceAddress string
	// Proxy is the proxy whose wasm filter deferred the request to
	// MeshGuard (SourceWasm), as its credential named it: the record says
	// which proxy's credential obtained the decision.
	Proxy string
	// TraceID is the W3C trace id from an incoming traceparent (32 hex
	// digits); empty makes the engine start one. ParentSpanID and
	// TraceSampled are the rest of the traceparent: the caller's span, the
	// parent of the engine's meshguard.check span. SetTraceparent sets all
	// three.
	TraceID      string
	ParentSpanID string
	TraceSampled bool
}

// SetTraceparent takes the trace context from a W3C traceparent value; an
// invalid one leaves the request without (the engine starts a trace).
func (r *Request) SetTraceparent(tp string) {
	p, _ := edge.ParseTraceparent(tp)
	r.TraceID, r.ParentSpanID, r.TraceSampled = p.TraceID, p.SpanID, p.Sampled
}

// Decision is the engine's answer. Adapters render it; see render.go.
type Decision struct {
	ID string // decision id, "dec_" + random
	// Allowed is what is enforced. In audit mode it is true even when
	// Effect is deny.
	Allowed bool
	// Effect is what MeshGuard decided, whatever the mode.
	Effect string // "allow" or "deny"
	// Status is the HTTP status of the decision: 200, 400, 401, 403 or 429
	// (201 for a token Delegate minted).
	Status  int
	Reason  string // stable reason code (see reasons.go and policy.Reason*)
	Message string // one sentence for people
	Policy  string
	Rule    string

	AgentID   string
	AgentName string
	Tier      trust.Tier // effective tier
	Action    string
	Resource  string
	// Chain lists agent ids from the root to the actor (the actor last);
	// just the actor when it acts on its own account.
	Chain []string
	// Revision is the policy set's revision.
	Revision string
	// RetryAfter is set with status 429.
	RetryAfter time.Duration
	// TargetAgent is the id of the agent the request goes to, when its host
	// belongs to one; Delegation is the token minted for it.
	TargetAgent string
	// TargetName is that agent's name, and ChainNames the chain's (root
	// first, "" for an agent no longer found), for people reading a trace.
	TargetName string
	ChainNames []string
	Delegation string
	// Context is the request's context as the policy saw it (parsed once,
	// kept for the audit record).
	Context map[string]any
	// Call is the agent-protocol call the decision was made on (an MCP
	// tool call, an A2A message), nil for any other request. The audit
	// record, the spans and the adapters' JSON-RPC answers read it.
	Call *agentproto.Call
	// ApprovalID is the human approval the request asked for or used
	// (docs/governance.md): adapters send it with the 403
	// (X-MeshGuard-Approval, the deny body, the JSON-RPC error's data).
	// ApprovalOutcome says what this request came to.
	ApprovalID      string
	ApprovalOutcome approval.Outcome
	// Shadow is the shadow policies' answer when it differs from the
	// policies' enforced one (docs/governance.md#shadow-policies); it
	// never changes the decision. Nil otherwise.
	Shadow *policy.ShadowDecision
	// raised is the approval this request raised, for ApprovalNotifier
	// once the decision is recorded.
	raised *approval.Approval
	// listing is what Permits evaluates: the policy set and the input
	// that decided an allowed request.
	listing *listing
	// inputs is what the audit record's inputs are made of (record.go).
	inputs recordInputs
	// record is the audit record Reissue copies (KeepRecord), nil
	// unless a cache asked for it; shared and never written once set.
	record *audit.Record
	// traceparent is Traceparent made with the ids by reissueIDs, or "".
	traceparent string
	// rpc: the request is a JSON-RPC POST to a route declaring a
	// protocol, so a denial is rendered as a JSON-RPC error (DenyBody).
	rpc bool
	// answer: what the rendered answer carries beyond the default
	// (Config.Answer; answer.go).
	answer Answer

	Mode    Mode
	Source  Source
	TraceID string
	// SpanID is the decision's meshguard.check span (16 hex digits).
	SpanID string
	// TraceSampled says the check span was recorded and sampled.
	TraceSampled bool
	// ParentsUpstream says the check span is the parent of what the
	// upstream does (see Traceparent).
	ParentsUpstream bool
	Time            time.Time
}

// Headers is a view of the request's headers (package edge has one for
// each shape adapters hold them in). Lookup takes a lower-case name and
// returns the value and how many times the header appeared (0: absent).
type Headers interface {
	Lookup(name string) (value string, n int)
}

// SetHeaders takes the credentials and the trace context from a scan of
// the request's headers (edge.HeaderScan), as every HTTP enforcement point
// does.
func (r *Request) SetHeaders(s *edge.HeaderScan) {
	r.Token = edge.Bearer(s.Get(edge.HAuthorization))
	r.Delegation = s.Get(edge.HDelegation)
	r.SetTraceparent(s.Traceparent())
}

// cooperative reports whether the caller states what is decided (POST
// /v1/check) rather than the engine reading it from the real request.
func (r *Request) cooperative() bool { return r.Source == SourceAPI }
