package filter

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
)

// The answer to an allowed MCP list request (tools/list, prompts/list,
// resources/list) is filtered to what the caller may call, as the gateway
// filters it (docs/mcp.md, "Lists"): its headers are held, its body
// buffered to its end (at most agentproto.MaxListResponse), rewritten by
// agentproto.FilterList with the decision's Permits, and only then sent
// on. An answer that cannot be filtered — over the bound, compressed,
// unreadable, ending with trailers — is replaced by a JSON-RPC error
// (502, code agentproto.CodeUnfilteredList, as the gateway's), never passed
// on unfiltered.

// holdList holds the response headers of an allowed list request until
// the body is filtered. Only a 2xx answer (but 204) carries a list; any
// other passes as sent.
func (h *request) holdList(endOfStream bool) types.Action {
	status, err := proxywasm.GetHttpResponseHeader(":status")
	if err != nil {
		return h.refuseList(h.list.Call, "reading the answer's status", err)
	}
	if code, err := strconv.Atoi(status); err != nil || code < 200 || code > 299 || code == 204 {
		h.list = nil
		return types.ActionContinue
	}
	if ce, err := proxywasm.GetHttpResponseHeader("content-encoding"); err == nil && ce != "" && !strings.EqualFold(ce, "identity") {
		// Accept-Encoding was removed upstream; an upstream that
		// compresses all the same is not decompressed here.
		return h.refuseList(h.list.Call, fmt.Sprintf("the answer is encoded (Content-Encoding %q)", ce), nil)
	}
	if endOfStream {
		return h.filterList(nil)
	}
	// The filtered body has another length; Envoy frames it anew.
	if err := proxywasm.RemoveHttpResponseHeader("content-length"); err != nil {
		return h.refuseList(h.list.Call, "removing the answer's content-length", err)
	}
	return types.ActionPause
}

// OnHttpResponseBody buffers the answer to an allowed list request to its
// end, then filters it. An answer over the bound is refused as soon as it
// is over, not buffered further.
func (h *request) OnHttpResponseBody(bodySize int, endOfStream bool) types.Action {
	if h.list == nil {
		return types.ActionContinue
	}
	if bodySize > agentproto.MaxListResponse {
		return h.refuseList(h.list.Call, fmt.Sprintf("the answer is over %d bytes", agentproto.MaxListResponse), nil)
	}
	if !endOfStream {
		return types.ActionPause // buffer
	}
	var body []byte
	if bodySize > 0 {
		var err error
		if body, err = proxywasm.GetHttpResponseBody(0, bodySize); err != nil {
			return h.refuseList(h.list.Call, "reading the answer", err)
		}
	}
	return h.filterList(body)
}

// OnHttpResponseTrailers refuses a list answer that ends with trailers:
// JSON-RPC over HTTP has none, and the body could not be replaced whole.
func (h *request) OnHttpResponseTrailers(int) types.Action {
	if h.list == nil {
		return types.ActionContinue
	}
	return h.refuseList(h.list.Call, "the answer ends with trailers", nil)
}

// filterList replaces the whole answer body with its filtered list and
// lets the held answer go.
func (h *request) filterList(body []byte) types.Action {
	d := h.list
	ct, err := proxywasm.GetHttpResponseHeader("content-type")
	if err != nil {
		ct = "" // refused by FilterList: no media type
	}
	out, err := agentproto.FilterList(*d.Call, body, ct, d.Permits)
	if err != nil {
		return h.refuseList(d.Call, "filtering the answer", err)
	}
	if err := proxywasm.ReplaceHttpResponseBody(out); err != nil {
		return h.refuseList(d.Call, "replacing the answer", err)
	}
	h.list = nil
	return types.ActionContinue
}

// refuseList answers the caller of a list request with a JSON-RPC error
// instead of an answer that could not be filtered, with the decision's
// response headers.
func (h *request) refuseList(call *agentproto.Call, what string, err error) types.Action {
	h.list = nil
	h.p.stats.failed.Increment(1)
	if err != nil {
		proxywasm.LogWarnf("meshguard: a list answer is not passed on: %s: %v", what, err)
	} else {
		proxywasm.LogWarnf("meshguard: a list answer is not passed on: %s", what)
	}
	hdrs := append([][2]string{{"content-type", "application/json"}, {"cache-control", "no-store"}}, h.responseHeaders...)
	if err := proxywasm.SendHttpResponse(502, hdrs, agentproto.ErrorResponse(call.ID, agentproto.CodeUnfilteredList, "MeshGuard could not filter the upstream's list, so it is not passed on", nil), -1); err != nil {
		proxywasm.LogErrorf("meshguard: sending the 502: %v", err)
	}
	return types.ActionPause
}

// deferredService stands for the route's service when the filter reads a
// deferred request's method: the method and id do not depend on it.
const deferredService = "deferred"

// deferredList returns the MCP list request r carries, if it is one: r is
// deferred to MeshGuard, whose verdict carries no Permits, so an allowed
// list cannot be filtered here and is refused (docs/wasm-filter.md).
// The method is read as MeshGuard's engine reads it, from the body, or
// from the 2026-07-28 headers when there is none; a body that is not an
// MCP list request (an A2A message, or one MeshGuard will refuse) is not
// one.
func deferredList(r *engine.Request, protocolRoute bool) *agentproto.Call {
	if !protocolRoute || r.Method != "POST" {
		return nil
	}
	var (
		c   agentproto.Call
		err error
	)
	if len(r.Body) == 0 {
		if r.Headers == nil {
			return nil
		}
		c, err = agentproto.HeaderOnly(deferredService, r.Headers)
	} else {
		c, err = agentproto.ParseMCP(deferredService, r.Body, nil)
	}
	if err != nil || !c.Lists() {
		return nil
	}
	return &c
}

// without returns hs without the headers named name (lower case).
func without(hs [][2]string, name string) [][2]string {
	out := hs[:0:0]
	for _, kv := range hs {
		if !strings.EqualFold(kv[0], name) {
			out = append(out, kv)
		}
	}
	return out
}
