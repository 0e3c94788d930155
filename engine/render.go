package engine

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/internal/edge"
)

// Header is one HTTP header to set.
type Header struct{ Name, Value string }

// Header names (docs/enforcement.md).
const (
	HeaderAgentID    = "x-meshguard-agent-id"
	HeaderAgentName  = "x-meshguard-agent-name"
	HeaderTier       = "x-meshguard-tier"
	HeaderDecisionID = "x-meshguard-decision-id"
	HeaderChain      = "x-meshguard-chain"
	HeaderDelegation = "x-meshguard-delegation"
	// The steering headers of earlier versions, which chose the action,
	// the resource and the context. The engine never reads them where it
	// sees the real request; adapters strip them like identity headers.
	HeaderAction   = "x-meshguard-action"
	HeaderResource = "x-meshguard-resource"
	HeaderContext  = "x-meshguard-context"

	// HeaderTraceparent is W3C's: set on the upstream request, replacing
	// the caller's, when the decision's span is its parent.
	HeaderTraceparent = "traceparent"

	HeaderDecision = "x-meshguard-decision"
	HeaderPolicy   = "x-meshguard-policy"
	HeaderTraceID  = "x-meshguard-trace-id"
	HeaderMode     = "x-meshguard-mode"
	// HeaderApproval names the approval a 403 waits on or was refused by
	// (docs/governance.md).
	HeaderApproval = "x-meshguard-approval"
)

// Traceparent is what an allowed request carries upstream: MeshGuard's
// check span as the parent when that span is exported (or MeshGuard started
// the trace), so what happens next hangs under the decision; "" leaves the
// caller's traceparent as it is. Made only when asked: most decisions are
// rendered without it (denials).
func (d *Decision) Traceparent() string {
	if !d.ParentsUpstream {
		return ""
	}
	// Made with the ids (reissueIDs), unless they have changed since.
	if tp := d.traceparent; len(tp) == 3+len(d.TraceID)+1+len(d.SpanID)+3 &&
		tp[3:3+len(d.TraceID)] == d.TraceID && tp[4+len(d.TraceID):len(tp)-3] == d.SpanID {
		return tp
	}
	// Sampled as the span was; a trace MeshGuard started, for the upstream
	// to record as it sees fit, the audit record naming it either way.
	return edge.Traceparent{TraceID: d.TraceID, SpanID: d.SpanID, Sampled: true}.String()
}

// UpstreamHeaders are set on the request forwarded upstream when the request
// is allowed: who is calling (the agent id), the delegation token minted for
// the target, the trace; the agent's name, tier, chain and the decision id
// when the Answer asks for them. Adapters use UpstreamEdit, which also says
// which of the caller's headers to strip.
func (d *Decision) UpstreamHeaders() []Header {
	if d.AgentID == "" {
		return d.AppendUpstreamHeaders(nil)
	}
	return d.AppendUpstreamHeaders(make([]Header, 0, 7))
}

// AppendUpstreamHeaders appends UpstreamHeaders to h: the wasm filter
// builds them into a buffer it reuses, where a new slice a request is an
// allocation Go's wasm runtime makes slowly.
func (d *Decision) AppendUpstreamHeaders(h []Header) []Header {
	if d.AgentID == "" {
		// Audit mode let an unauthenticated request through: no
		// identity, only the trace.
		if tp := d.Traceparent(); tp != "" {
			return append(h, Header{HeaderTraceparent, tp})
		}
		return h
	}
	h = append(h, Header{HeaderAgentID, d.AgentID})
	if d.answer&AnswerAgentName != 0 {
		h = append(h, Header{HeaderAgentName, d.AgentName})
	}
	if d.answer&AnswerTier != 0 {
		h = append(h, Header{HeaderTier, d.Tier.String()})
	}
	if d.answer&AnswerDecisionID != 0 {
		h = append(h, Header{HeaderDecisionID, d.ID})
	}
	if d.answer&AnswerChain != 0 {
		h = append(h, Header{HeaderChain, strings.Join(d.Chain, ",")})
	}
	if d.Delegation != "" {
		h = append(h, Header{HeaderDelegation, d.Delegation})
	}
	if tp := d.Traceparent(); tp != "" {
		h = append(h, Header{HeaderTraceparent, tp})
	}
	return h
}

// StrippedUpstreamHeaders lists the request headers an adapter removes
// before forwarding, whether or not it sets them again: they assert
// identity, which only MeshGuard may do, or they were addressed to
// MeshGuard (the steering headers), not to the upstream.
var StrippedUpstreamHeaders = []string{HeaderAgentID, HeaderAgentName, HeaderTier, HeaderDecisionID, HeaderChain, HeaderAction, HeaderResource, HeaderContext}

// UpstreamEdit is what every adapter (ext_authz gRPC and HTTP, the gateway,
// the wasm filter) does to the request of an allowed decision before it goes
// upstream: set the headers in set, each replacing any value the caller
// sent, and remove those in remove — StrippedUpstreamHeaders and the
// delegation header, minus those in set, so an upstream never sees a forged
// identity or a delegation token MeshGuard did not mint for this hop. A
// header is never in both: Envoy applies the removals and the additions in
// an order of its own. Adapters that see the request's header names also
// remove other spellings of these (edge.IsMeshGuardHeader).
func (d *Decision) UpstreamEdit() (set []Header, remove []string) {
	set = d.UpstreamHeaders()
	remove = make([]string, 0, len(StrippedUpstreamHeaders)+1)
	for name := range callerStripped {
		if !hasHeader(set, name) {
			remove = append(remove, name)
		}
	}
	return set, remove
}

// callerStripped yields the headers an upstream never gets from the
// caller (UpstreamEdit removes each unless the decision sets it):
// StrippedUpstreamHeaders and the delegation header.
func callerStripped(yield func(string) bool) {
	for _, name := range StrippedUpstreamHeaders {
		if !yield(name) {
			return
		}
	}
	yield(HeaderDelegation)
}

// StrippedFromCaller reports whether UpstreamEdit removes a header named
// name (in any case) from the caller's request unless the decision sets
// it: for an adapter that builds the upstream's headers itself (the wasm
// filter's local allow) without UpstreamEdit's slices.
func StrippedFromCaller(name string) bool {
	for n := range callerStripped {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func hasHeader(hs []Header, name string) bool {
	for _, h := range hs {
		if h.Name == name {
			return true
		}
	}
	return false
}

// ResponseHeaders are set on the response to the caller: on a denial, and
// on any answer in audit mode, what the SDKs read (the decision, the trace
// id, the approval, Retry-After) and the policy; on an allowed request in
// enforce mode nothing unless the Answer asks for AnswerResponseHeaders,
// or the request is a list (tools/list…) whose answer MeshGuard filters
// and may refuse itself (DecisionHeaders).
func (d *Decision) ResponseHeaders() []Header {
	if d.Allowed && d.Mode != ModeAudit && d.answer&AnswerResponseHeaders == 0 && (d.Call == nil || !d.Call.Lists()) {
		return nil
	}
	return d.DecisionHeaders()
}

// DecisionHeaders are ResponseHeaders whatever the Answer: for an answer
// MeshGuard writes itself about an allowed request (POST /v1/check, whose
// answer is the decision; the gateway's 502 when the upstream fails), not
// one the upstream writes.
func (d *Decision) DecisionHeaders() []Header {
	h := []Header{{HeaderDecision, d.Effect}, {HeaderTraceID, d.TraceID}}
	if d.Policy != "" {
		h = append(h, Header{HeaderPolicy, d.Policy})
	}
	if d.Mode == ModeAudit {
		h = append(h, Header{HeaderMode, string(ModeAudit)})
	}
	if d.Status == 429 && !d.Allowed {
		h = append(h, Header{"retry-after", strconv.Itoa(d.RetryAfterSeconds())})
	}
	if d.ApprovalID != "" && d.Status == 403 {
		h = append(h, Header{HeaderApproval, d.ApprovalID})
	}
	return h
}

// RetryAfterSeconds is the wait a 429 names (Retry-After, the deny body's
// retry_after): the limiter's wait in whole seconds, rounded up, at least
// 1 — never 0, which would invite an instant retry. 0 for any other status.
func (d *Decision) RetryAfterSeconds() int {
	if d.Status != 429 {
		return 0
	}
	s := int((d.RetryAfter + 999_999_999) / 1_000_000_000)
	return max(s, 1)
}

// ErrorCode is the deny body's "error" for the decision's status:
// unauthorized (401), bad_request (400), rate_limited (429), else
// forbidden.
func (d *Decision) ErrorCode() string {
	switch d.Status {
	case 401:
		return "unauthorized"
	case 400:
		return "bad_request"
	case 429:
		return "rate_limited"
	}
	return "forbidden"
}

// denyBody is the JSON body of a denial (docs/enforcement.md).
type denyBody struct {
	Error      string `json:"error"`
	Message    string `json:"message"`
	Reason     string `json:"reason,omitempty"`
	Policy     string `json:"policy,omitempty"`
	Rule       string `json:"rule,omitempty"`
	Action     string `json:"action,omitempty"`
	TraceID    string `json:"trace_id,omitempty"`
	DecisionID string `json:"decision_id,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
	// ApprovalID and ApprovalURL: the approval a 403 waits on or was
	// refused by, and where to follow it (ApprovalPath).
	ApprovalID  string `json:"approval_id,omitempty"`
	ApprovalURL string `json:"approval_url,omitempty"`
}

// DenyBody is the JSON body sent with a denial:
// 401 {"error":"unauthorized","message"}, 403 {"error":"forbidden",
// "message","reason","policy","rule","action","trace_id"}, with
// "approval_id" and "approval_url" when it is about a human approval, 429
// {"error":"rate_limited",…,"retry_after"}, 400 {"error":"bad_request",…}.
// A JSON-RPC request to a route declaring MCP or A2A is answered in its
// protocol's form instead (denyRPC), which its clients read as an error.
func (d *Decision) DenyBody() []byte {
	b := denyBody{Error: d.ErrorCode(), Message: d.Message, Reason: d.Reason, TraceID: d.TraceID, DecisionID: d.ID, RetryAfter: d.RetryAfterSeconds()}
	switch d.Status {
	case 401, 400:
	case 429:
		b.Action, b.Policy = d.Action, d.Policy
	default:
		b.Policy, b.Rule, b.Action = d.Policy, d.Rule, d.Action
		if d.ApprovalID != "" {
			b.ApprovalID, b.ApprovalURL = d.ApprovalID, ApprovalPath(d.ApprovalID)
		}
	}
	if d.rpc {
		return denyRPC(d, &b)
	}
	out, _ := json.Marshal(b) // plain strings and ints: cannot fail
	return out
}

// JSON-RPC error codes of denials (docs/mcp.md, "Denials"): the reserved
// -32600 for a request MeshGuard refuses to read, and codes of the
// implementation-defined range for the rest, after the HTTP status.
// None is a code either protocol gives its own errors: Forbidden is not
// -32003, which the official MCP Go SDK uses for "client is closing" (it
// reports a call answered with it as a closed connection, losing the
// denial), and Unauthorized is not -32001, A2A's TaskNotFoundError.
const (
	RPCInvalidRequest = -32600
	RPCUnauthorized   = -32041
	RPCForbidden      = -32043
	RPCRateLimited    = -32029
)

// denyRPC is a denial as a JSON-RPC error response to the request's id
// (null when the request was not read far enough to know it, as JSON-RPC
// asks), with the deny body as its data. The HTTP status stays the
// denial's: MCP clients read the error from the body of a 4xx and keep
// the session.
func denyRPC(d *Decision, b *denyBody) []byte {
	code := RPCForbidden
	switch d.Status {
	case 400:
		code = RPCInvalidRequest
	case 401:
		code = RPCUnauthorized
	case 429:
		code = RPCRateLimited
	}
	id := ""
	if d.Call != nil {
		id = d.Call.ID
	}
	return agentproto.ErrorResponse(id, code, d.Message, b)
}
