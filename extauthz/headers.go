package extauthz

import (
	"net/netip"
	"strings"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/edge"
)

// Bounds on what the adapters read (docs/enforcement.md#bounds): package edge's,
// which every enforcement point shares (the wasm filter too).
const (
	MaxHeaders        = edge.MaxHeaders
	MaxHeaderBytes    = edge.MaxHeaderBytes
	MaxHeaderValueLen = edge.MaxHeaderValueLen
	MaxTokenLen       = edge.MaxTokenLen
	// MaxContextExtensions bounds the per-route context_extensions map (set by
	// the proxy's configuration, not by callers, but still outside input).
	MaxContextExtensions = 64
)

// ContextExtensionAction is the context_extensions key whose value is the
// route's action, as MeshGuard's xDS pushes it per route (a route
// mapping, which no request header can change).
const ContextExtensionAction = "meshguard.action"

// ContextExtensionMinTier is the context_extensions key whose value is the
// lowest trust tier the route's service admits (the catalogue's minTier).
const ContextExtensionMinTier = "meshguard.min_tier"

// ContextExtensionProtocol and ContextExtensionService are the
// context_extensions keys whose values are the agent protocol (mcp, a2a)
// and the service name a catalogue service declares (docs/mcp.md): its
// routes send the request body, from which the action is read.
const (
	ContextExtensionProtocol = "meshguard.protocol"
	ContextExtensionService  = "meshguard.service"
)

// HeaderAuthHeadersToRemove is how an HTTP ext_authz server asks Envoy to
// remove request headers (the gRPC API has OkHttpResponse.headers_to_remove).
const HeaderAuthHeadersToRemove = "x-envoy-auth-headers-to-remove"

// ipOnly returns addr as a canonical IP address, or "" if it is not one. The
// source address is recorded and keys per-IP limits, so only a parsed IP
// (never free text from the wire) reaches the engine.
func ipOnly(addr string) string {
	a, err := netip.ParseAddr(strings.Trim(addr, " \t[]"))
	if err != nil {
		if ap, err := netip.ParseAddrPort(strings.Trim(addr, " \t")); err == nil {
			return ap.Addr().Unmap().String()
		}
		return ""
	}
	return a.Unmap().String()
}

// rejection is a denial the adapter makes itself, for input it will not hand
// to the engine (bounds, a CheckRequest without an HTTP request).
type rejection struct {
	status          int
	reason, message string
}

func badRequest(msg string) *rejection {
	return &rejection{400, engine.ReasonBadRequest, msg}
}

// decision renders a rejection (engine.Refusal).
func (rj *rejection) decision(r *engine.Request) engine.Decision {
	return engine.Refusal(r, rj.status, rj.reason, rj.message, time.Now())
}

// logPath is a request path fit for a log line: without its query string
// (which may carry secrets) and cut short.
func logPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if len(p) > 256 {
		p = p[:256] + "…"
	}
	return strings.ToValidUTF8(p, "\uFFFD")
}
