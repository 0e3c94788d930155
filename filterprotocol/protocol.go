// Package filterprotocol is what the wasm filter and MeshGuard's HTTP port
// say to each other: the /v1/filter/* paths and the credential header, a
// request the filter deferred (DeferredCheck), the decision it enforces
// (Verdict), and the audit records it ships (AuditBatch).
//
// Both ends import it — the filter to call, package admin to answer — so
// the wire format has one definition. It depends on neither the filter's
// configuration nor its decider, and builds for wasip1;
// docs/wasm-filter.md and docs/api.md are the reference.
package filterprotocol

import (
	"strconv"
	"strings"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/trust"
)

// The filter's calls to MeshGuard's HTTP port, each authenticated by
// HeaderFilterToken (filterconfig.Upstream.Token).
const (
	// CheckPath: POST a DeferredCheck, get a Verdict.
	CheckPath = "/v1/filter/check"
	// AuditPath: POST an AuditBatch.
	AuditPath = "/v1/filter/audit"
	// ConfigPath: GET the configuration (for filters configured by hand,
	// such as an Istio WasmPlugin, that fetch it).
	ConfigPath = "/v1/filter/config"
	// HeaderFilterToken carries the filter's credential.
	HeaderFilterToken = "x-meshguard-filter-token"
	// MaxAuditBatch bounds the records of one AuditBatch (and so the
	// configuration's audit.batchSize).
	MaxAuditBatch = 1000
	// MaxCheckBytes bounds a DeferredCheck as MeshGuard reads it: a body
	// of agentproto.MaxBody, base64-encoded, beside headers within the
	// bounds every enforcement point keeps, each escaped at worst.
	MaxCheckBytes = 3 << 20
)

// DeferredCheck is a request the filter could not decide alone, as it read
// it: MeshGuard decides it with its own engine.
type DeferredCheck struct {
	Method     string `json:"method"`
	Host       string `json:"host"`
	Path       string `json:"path"`
	Token      string `json:"token,omitempty"`
	Delegation string `json:"delegation,omitempty"`
	// Headers are the request's other headers (repeats merged), for the
	// policies' header.* context keys: not the credentials above, nor
	// MeshGuard's own.
	Headers     [][2]string `json:"headers,omitempty"`
	RouteAction string      `json:"routeAction,omitempty"`
	// RouteProtocol and RouteService: the route declares an agent
	// protocol (docs/mcp.md), and Body is the request body the filter
	// buffered for it (at most agentproto.MaxBody, or its first
	// MaxBody+1 bytes when it is larger; base64 in JSON).
	RouteProtocol agentproto.Protocol `json:"routeProtocol,omitempty"`
	RouteService  string              `json:"routeService,omitempty"`
	Body          []byte              `json:"body,omitempty"`
	MinTier       string              `json:"minTier,omitempty"`
	Traceparent   string              `json:"traceparent,omitempty"`
	SourceAddress string              `json:"sourceAddress,omitempty"`
}

// NewDeferredCheck is r (prepared by filterdecider.Decider.Prepare), whose
// headers are headers, as the filter sends it.
func NewDeferredCheck(r *engine.Request, headers [][2]string) DeferredCheck {
	dc := DeferredCheck{
		Method: r.Method, Host: r.Host, Path: r.Path, Token: r.Token, Delegation: r.Delegation,
		RouteAction: r.RouteAction, SourceAddress: r.SourceAddress,
		RouteProtocol: r.RouteProtocol, RouteService: r.RouteService, Body: r.Body,
	}
	for _, kv := range headers {
		if name := strings.ToLower(kv[0]); name != "authorization" && name != "cookie" && !strings.HasPrefix(name, "x-meshguard-") && !strings.HasPrefix(name, ":") {
			dc.Headers = append(dc.Headers, kv)
		}
	}
	if r.MinTier > trust.Untrusted {
		dc.MinTier = r.MinTier.String()
	}
	if r.TraceID != "" && r.ParentSpanID != "" {
		dc.Traceparent = edge.Traceparent{TraceID: r.TraceID, SpanID: r.ParentSpanID, Sampled: r.TraceSampled}.String()
	}
	return dc
}

// Request is the engine request MeshGuard decides, or a message saying
// why the check is refused: headers beyond the bounds every enforcement
// point keeps, a body over agentproto.MaxBody+1, or a minimum tier that is no
// tier (the filter's configuration is wrong). A protocol or service that is
// not valid is the engine's to refuse, as for any route context.
func (dc *DeferredCheck) Request() (engine.Request, string) {
	r := engine.Request{
		Source: engine.SourceWasm, Method: dc.Method, Host: dc.Host, Path: dc.Path, Token: dc.Token, Delegation: dc.Delegation,
		Headers: edge.PairHeaders(dc.Headers), RouteAction: dc.RouteAction, SourceAddress: dc.SourceAddress,
		RouteProtocol: dc.RouteProtocol, RouteService: dc.RouteService, Body: dc.Body,
	}
	if len(dc.Body) > agentproto.MaxBody+1 {
		// The filter hands on at most MaxBody+1 bytes of a body: one
		// more than the bound says the body is larger, which the engine
		// refuses (400, recorded) as the filter's own engine does. The
		// filter defers such a body when it cannot verify the token
		// (HS256): MeshGuard decides and records it.
		return r, "body: " + strconv.Itoa(len(dc.Body)) + " bytes, over the bound of " + strconv.Itoa(agentproto.MaxBody+1)
	}
	r.SetTraceparent(dc.Traceparent)
	var sc edge.HeaderScan
	for _, kv := range dc.Headers {
		if !sc.Add(kv[0], kv[1]) {
			return r, "headers: " + sc.Bad()
		}
	}
	if dc.MinTier != "" {
		t, err := trust.Parse(dc.MinTier)
		if err != nil {
			return r, "minTier: " + strconv.Quote(dc.MinTier) + " is not a trust tier"
		}
		r.MinTier = t
	}
	return r, ""
}

// Verdict is a decision as the filter enforces it, whether its own engine
// made it or MeshGuard did: the headers to strip and set upstream, those
// to add to the response, and for a denial its status and body.
type Verdict struct {
	Allowed         bool        `json:"allowed"`
	Status          int         `json:"status"`
	RemoveHeaders   []string    `json:"removeHeaders,omitempty"`
	UpstreamHeaders [][2]string `json:"upstreamHeaders,omitempty"`
	ResponseHeaders [][2]string `json:"responseHeaders,omitempty"`
	Body            string      `json:"body,omitempty"`
	DecisionID      string      `json:"decisionId"`
	TraceID         string      `json:"traceId"`
}

// NewVerdict renders d as ext_authz does: allowed, the caller's identity
// headers and delegation token are replaced by MeshGuard's, and the
// traceparent by one under the decision's span when the decision sets one
// (Decision.Traceparent); denied, the deny status and JSON body
// (docs/enforcement.md).
func NewVerdict(d *engine.Decision) Verdict {
	v := Verdict{Allowed: d.Allowed, Status: d.Status, DecisionID: d.ID, TraceID: d.TraceID}
	v.ResponseHeaders = pairs(d.ResponseHeaders())
	if !d.Allowed {
		if v.Status < 400 || v.Status > 599 {
			v.Status = 403
		}
		v.Body = string(d.DenyBody())
		return v
	}
	up, remove := d.UpstreamEdit()
	v.UpstreamHeaders, v.RemoveHeaders = pairs(up), remove
	return v
}

// pairs are hs as name-value pairs, nil for none: one allocation, where
// appending one at a time took four for an allow's seven upstream
// headers (the wasm filter makes a verdict per request).
func pairs(hs []engine.Header) [][2]string {
	if len(hs) == 0 {
		return nil
	}
	out := make([][2]string, len(hs))
	for i, h := range hs {
		out[i] = [2]string{h.Name, h.Value}
	}
	return out
}

// AuditBatch is what the filter ships: the records of its local decisions
// and how many it had to drop, since the last batch MeshGuard accepted,
// because its buffer was full.
type AuditBatch struct {
	Revision string         `json:"revision,omitempty"`
	Dropped  uint64         `json:"dropped"`
	Records  []audit.Record `json:"records"`
}
