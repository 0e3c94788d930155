package filter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterdecider"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/internal/edge"
)

// maxVerdictBytes bounds MeshGuard's answer to a deferred check.
const maxVerdictBytes = 64 << 10

// request is one HTTP request through the filter.
type request struct {
	types.DefaultHttpContext
	p *plugin
	// responseHeaders are set on the response, allowed or not.
	responseHeaders [][2]string
	traceID         string
	// sent are the request's headers as they arrived.
	sent [][2]string
	// pending is a request to a route declaring an agent protocol,
	// waiting for its body (OnHttpRequestBody); merged its headers,
	// repeats merged, for a deferral.
	pending *engine.Request
	merged  [][2]string
	// protocolRoute: the request goes to a route declaring an agent
	// protocol (its body was buffered for the decision).
	protocolRoute bool
	// list is the local decision of an allowed MCP list request, whose
	// answer is filtered (list.go); deferredList is a list request
	// deferred to MeshGuard, whose answer the filter cannot filter.
	list         *engine.Decision
	deferredList *agentproto.Call
	// start is when Envoy received the request (request.time), seen
	// when the filter read its headers, on the VM's monotonic clock: a
	// request decided later (at the end of its body) is decided at
	// start plus the time since (now).
	start, seen time.Time
	// bodySize is what is buffered of a pending request's body.
	bodySize int
	// waiting: the request is paused until MeshGuard's verdict (ask).
	// Its body and trailers are held meanwhile: Envoy continues a request
	// whose body or trailers callback answers Continue, even though its
	// headers callback paused it, which would send it upstream undecided.
	waiting bool
}

// OnHttpRequestHeaders decides the request: locally, or by asking
// MeshGuard (the request waits), or, when neither is possible, with a 503:
// never an allow.
func (h *request) OnHttpRequestHeaders(_ int, endOfStream bool) types.Action {
	p := h.p
	if p.decider == nil {
		return h.fail("the filter has no configuration yet", nil)
	}
	hdrs, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		return h.fail("reading the request headers", err)
	}
	h.start = requestTime()
	p.now = h.start
	r := engine.Request{Source: engine.SourceWasm, SourceAddress: p.vm.sourceAddress()}
	var sc edge.HeaderScan
	merged := hdrs
	if repeated(hdrs) {
		merged = edge.MergeRepeated(hdrs)
	}
	for _, kv := range merged {
		if !sc.Add(kv[0], kv[1]) {
			break
		}
	}
	r.Headers = edge.PairHeaders(merged)
	r.Method, r.Path = sc.Get(edge.HMethod), sc.Get(edge.HPath)
	if r.Host = sc.Get(edge.HAuthority); r.Host == "" {
		r.Host = sc.Get(edge.HHost)
	}
	r.SetHeaders(&sc)
	h.traceID = r.TraceID
	h.sent = hdrs
	if bad := sc.Bad(); bad != "" {
		proxywasm.LogInfof("meshguard: request refused before the engine: %s", bad)
		d := engine.Refusal(&r, 400, engine.ReasonBadRequest, bad, p.now)
		return h.enforce(filterprotocol.NewVerdict(&d), false)
	}
	p.decider.Prepare(&r)
	h.protocolRoute = p.decider.WantsBody(&r)
	if !endOfStream && h.protocolRoute {
		// An MCP or A2A call is decided on what its body carries: the
		// headers wait with it (Envoy stops iteration) until the whole
		// body is here (OnHttpRequestBody).
		// A copy: taking r's own address would put every request's r
		// on the heap, where most are decided here and go.
		pending := r
		h.pending, h.merged = &pending, merged
		h.seen = time.Now() // only here: a clock read is a host call
		return types.ActionPause
	}
	return h.decide(&r, merged)
}

// OnHttpRequestBody buffers the body of a request decided on it (pending)
// until its end, then decides. A body over agentproto.MaxBody is not
// buffered to its end nor decided on a prefix: the engine is handed its
// first MaxBody+1 bytes, which it refuses as too large (a 400 it records).
// Envoy's own buffer limit (per_connection_buffer_limit_bytes) must be at
// least MaxBody, else Envoy answers 413 first (docs/wasm-filter.md).
func (h *request) OnHttpRequestBody(bodySize int, endOfStream bool) types.Action {
	if h.waiting {
		return types.ActionPause // buffered until the verdict resumes it
	}
	r := h.pending
	if r == nil {
		return types.ActionContinue
	}
	h.bodySize = bodySize
	over := bodySize > agentproto.MaxBody
	if !endOfStream && !over {
		return types.ActionPause // buffer
	}
	h.pending = nil
	h.p.now = h.now()
	n := min(bodySize, agentproto.MaxBody+1)
	if n > 0 {
		body, err := proxywasm.GetHttpRequestBody(0, n)
		if err != nil {
			return h.fail("reading the request body", err)
		}
		r.Body = body
	}
	return h.decide(r, h.merged)
}

// errTrailers: a request decided on its body ended with trailers.
var errTrailers = errors.New("a request decided on its body (MCP, A2A) may not end with trailers")

// OnHttpRequestTrailers refuses a request decided on its body that ends
// with trailers: JSON-RPC over HTTP has none. The engine refuses it (a
// 400 it records, a JSON-RPC error) with the body buffered so far, whole:
// a deferral carries that body, so MeshGuard decides on it, never on the
// headers alone.
func (h *request) OnHttpRequestTrailers(int) types.Action {
	if h.waiting {
		return types.ActionPause // until the verdict resumes the request
	}
	r := h.pending
	if r == nil {
		return types.ActionContinue
	}
	h.pending = nil
	h.p.now = h.now()
	if h.bodySize > 0 {
		body, err := proxywasm.GetHttpRequestBody(0, h.bodySize)
		if err != nil {
			return h.fail("reading the request body", err)
		}
		r.Body = body
	}
	r.BodyError = errTrailers
	return h.decide(r, h.merged)
}

// now is the time of a decision made after the headers: the request's
// time plus the time since its headers. A call whose body trickles in
// for hours is decided when it is whole, as ext_authz and the gateway
// decide it — not at its first byte, with a token or delegation that has
// since expired, inside a time window that has since closed.
func (h *request) now() time.Time { return h.start.Add(time.Since(h.seen)) }

// decide decides r (prepared) with the engine and enforces the verdict,
// or defers it to MeshGuard.
func (h *request) decide(r *engine.Request, merged [][2]string) types.Action {
	d, err := h.p.decider.Check(context.Background(), r)
	switch {
	case errors.Is(err, filterdecider.ErrDefer):
		return h.ask(r, merged)
	case err != nil:
		return h.fail("deciding", err)
	}
	if !d.Allowed {
		return h.enforce(filterprotocol.NewVerdict(&d), false)
	}
	if d.Call != nil && d.Call.Lists() {
		list := d // a copy: d's own address would put every decision on the heap
		h.list = &list
	}
	return h.allow(&d)
}

// allow forwards a local allow as enforce forwards NewVerdict(d), with the
// upstream edit built into the VM's reused buffers (set, pairs) rather
// than the verdict's slices: UpstreamEdit, its removals and the verdict's
// pairs were three allocations a request (≈ 600 B), each slow in Go's wasm
// runtime. Dropping what the verdict removes or sets is dropping what
// engine.StrippedFromCaller names and what d sets: UpstreamEdit's
// removals are the first minus the second.
func (h *request) allow(d *engine.Decision) types.Action {
	if rh := d.ResponseHeaders(); len(rh) > 0 {
		h.responseHeaders = make([][2]string, len(rh))
		for i, x := range rh {
			h.responseHeaders[i] = [2]string{x.Name, x.Value}
		}
	}
	vm := h.p.vm
	set := d.AppendUpstreamHeaders(vm.set[:0])
	pairs := vm.pairs[:0]
	for _, kv := range h.sent {
		otherSpelling := strings.IndexByte(kv[0], '_') >= 0 && edge.IsMeshGuardHeader(kv[0])
		if !otherSpelling && !engine.StrippedFromCaller(kv[0]) && !setByDecision(kv[0], set) {
			pairs = append(pairs, kv)
		}
	}
	for _, x := range set {
		pairs = append(pairs, [2]string{x.Name, x.Value})
	}
	clear(set) // the delegation token minted for this hop
	vm.keepSet(set)
	return h.forward(pairs, d.ID, false)
}

func setByDecision(name string, hs []engine.Header) bool {
	for _, x := range hs {
		if strings.EqualFold(x.Name, name) {
			return true
		}
	}
	return false
}

// enforce applies a verdict. resume says the request was paused waiting
// for MeshGuard.
func (h *request) enforce(v filterprotocol.Verdict, resume bool) types.Action {
	h.responseHeaders = v.ResponseHeaders
	if !v.Allowed {
		h.p.stats.deny.Increment(1)
		hdrs := append([][2]string{{"content-type", "application/json"}, {"cache-control", "no-store"}}, v.ResponseHeaders...)
		if err := proxywasm.SendHttpResponse(uint32(v.Status), hdrs, []byte(v.Body), -1); err != nil {
			proxywasm.LogErrorf("meshguard: sending the denial of %s: %v", v.DecisionID, err)
		}
		return types.ActionPause
	}
	return h.forward(upstream(h.p.vm.pairs[:0], h.sent, &v), v.DecisionID, resume)
}

// forward sends the request upstream with the header map pairs (built in
// the VM's reused pairs), emptied once the host has it.
func (h *request) forward(pairs [][2]string, decisionID string, resume bool) types.Action {
	h.p.vm.keepPairs(pairs)
	hdrs := pairs
	if h.list != nil {
		// The answer is filtered (list.go), so it must come back
		// readable: no compression.
		hdrs = without(pairs, "accept-encoding")
	}
	err := setRequestHeaders(hdrs)
	clear(pairs) // the reused pairs point at the request's headers, its token
	if err != nil {
		return h.fail("setting the upstream headers", err)
	}
	h.p.stats.allow.Increment(1)
	if resume {
		if err := proxywasm.ResumeHttpRequest(); err != nil {
			proxywasm.LogErrorf("meshguard: resuming %s: %v", decisionID, err)
		}
	}
	return types.ActionContinue
}

// upstream is the request's header map as it goes upstream: as it
// arrived, without the headers the verdict removes or sets, and without
// MeshGuard headers spelled with '_' (CGI-style upstreams read
// X_MeshGuard_Agent_Id as X-MeshGuard-Agent-Id), then those it sets. Envoy
// takes the whole map in one host call, where a call per header would cost
// a dozen. The map is appended to out (the VM's reused pairs).
func upstream(out, sent [][2]string, v *filterprotocol.Verdict) [][2]string {
	for _, kv := range sent {
		otherSpelling := strings.IndexByte(kv[0], '_') >= 0 && edge.IsMeshGuardHeader(kv[0])
		if !otherSpelling && !named(kv[0], v.RemoveHeaders) && !setBy(kv[0], v.UpstreamHeaders) {
			out = append(out, kv)
		}
	}
	return append(out, v.UpstreamHeaders...)
}

// repeated reports whether a header name comes twice in hs (as
// edge.MergeRepeated compares them): only then is a merged copy made,
// which most requests do not need.
func repeated(hs [][2]string) bool {
	if len(hs) > edge.MaxHeaders {
		return false // MergeRepeated leaves them as they are
	}
	for i := range hs {
		for j := i + 1; j < len(hs); j++ {
			if strings.EqualFold(hs[i][0], hs[j][0]) {
				return true
			}
		}
	}
	return false
}

func named(name string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func setBy(name string, hs [][2]string) bool {
	for _, kv := range hs {
		if strings.EqualFold(kv[0], name) {
			return true
		}
	}
	return false
}

// OnHttpResponseHeaders tells the caller the decision, as ext_authz's
// response_headers_to_add do, and holds the answer to an allowed list
// request until it is filtered (list.go).
func (h *request) OnHttpResponseHeaders(_ int, endOfStream bool) types.Action {
	for _, kv := range h.responseHeaders {
		if err := proxywasm.ReplaceHttpResponseHeader(kv[0], kv[1]); err != nil {
			proxywasm.LogWarnf("meshguard: setting response header %s: %v", kv[0], err)
		}
	}
	if h.list != nil {
		return h.holdList(endOfStream)
	}
	return types.ActionContinue
}

// ask sends the request to MeshGuard and pauses it until the verdict.
func (h *request) ask(r *engine.Request, headers [][2]string) types.Action {
	p := h.p
	p.stats.deferred.Increment(1)
	h.deferredList = deferredList(r, h.protocolRoute)
	body, err := json.Marshal(filterprotocol.NewDeferredCheck(r, headers))
	if err != nil {
		return h.fail("encoding the deferred check", err)
	}
	up := &p.cfg.MeshGuard
	if _, err := proxywasm.DispatchHttpCall(up.Cluster, callHeaders(up, "POST", filterprotocol.CheckPath), body, nil, uint32(up.Timeout()), h.onVerdict); err != nil {
		return h.fail("calling MeshGuard (cluster "+p.cfg.MeshGuard.Cluster+")", err)
	}
	h.waiting = true
	return types.ActionPause
}

// onVerdict applies MeshGuard's answer; anything but a well-formed 200 is
// a failure, answered 503.
func (h *request) onVerdict(_, bodySize, _ int) {
	h.waiting = false
	status := callStatus()
	if status != "200" {
		h.fail("MeshGuard answered the deferred check with status "+status, nil)
		return
	}
	if bodySize > maxVerdictBytes {
		h.fail("MeshGuard's verdict is larger than the limit", nil)
		return
	}
	body, err := proxywasm.GetHttpCallResponseBody(0, bodySize)
	if err != nil {
		h.fail("reading MeshGuard's verdict", err)
		return
	}
	var v filterprotocol.Verdict
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || v.Status == 0 {
		h.fail("MeshGuard's verdict is not one", err)
		return
	}
	// The body is the verdict and nothing else: a decoder reads only the
	// first value, and an allow followed by anything is not a verdict.
	if _, err := dec.Token(); err != io.EOF {
		h.fail("MeshGuard's verdict is followed by more data", nil)
		return
	}
	if v.Allowed && h.deferredList != nil {
		h.responseHeaders = v.ResponseHeaders
		h.refuseList(h.deferredList, "the list request was decided by MeshGuard, whose verdict cannot say what the caller may call, so its answer cannot be filtered here", nil)
		return
	}
	h.enforce(v, true)
}

// fail answers 503: MeshGuard cannot decide, so the request does not pass.
func (h *request) fail(what string, err error) types.Action {
	h.p.stats.failed.Increment(1)
	if err != nil {
		proxywasm.LogErrorf("meshguard: %s: %v; failing closed", what, err)
	} else {
		proxywasm.LogErrorf("meshguard: %s; failing closed", what)
	}
	body, _ := json.Marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		TraceID string `json:"trace_id,omitempty"`
	}{"unavailable", "MeshGuard could not decide this request (see the proxy's logs); failing closed", h.traceID})
	hdrs := [][2]string{{"content-type", "application/json"}, {"cache-control", "no-store"}}
	if err := proxywasm.SendHttpResponse(503, hdrs, body, -1); err != nil {
		proxywasm.LogErrorf("meshguard: sending the 503: %v", err)
	}
	return types.ActionPause
}

// callHeaders are the headers of a call to MeshGuard.
func callHeaders(up *filterconfig.Upstream, method, path string) [][2]string {
	return [][2]string{
		{":method", method}, {":path", path}, {":authority", up.HostAuthority()},
		{"content-type", "application/json"}, {filterprotocol.HeaderFilterToken, up.Token},
	}
}

// callStatus is the :status of the answer to a dispatched call.
func callStatus() string {
	hs, err := proxywasm.GetHttpCallResponseHeaders()
	if err != nil {
		return "none (" + err.Error() + ")"
	}
	for _, kv := range hs {
		if kv[0] == ":status" {
			return kv[1]
		}
	}
	return "none"
}

// sourceAddress is the downstream peer's IP (the source.address
// attribute), "" if the host gives none: only a parsed IP is recorded.
// The last one read is kept with its parse: a proxy's requests come from
// few peers, and the string and its parse were two allocations a request.
func (v *vm) sourceAddress() string {
	b, err := getProperty(propSourceAddress)
	if err != nil {
		return ""
	}
	if v.lastPeer != "" && string(b) == v.lastPeer {
		return v.lastPeerIP
	}
	s := string(b)
	ip := ""
	if ap, err := netip.ParseAddrPort(s); err == nil {
		ip = ap.Addr().Unmap().String()
	} else if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		ip = a.Unmap().String()
	}
	v.lastPeer, v.lastPeerIP = s, ip
	return ip
}
