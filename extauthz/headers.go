package extauthz

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"strings"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/wire"
)

// Bounds on what the adapters read (SPEC §12): package wire's, which every
// enforcement point shares (the wasm filter too).
const (
	MaxHeaders        = wire.MaxHeaders
	MaxHeaderBytes    = wire.MaxHeaderBytes
	MaxHeaderValueLen = wire.MaxHeaderValueLen
	MaxTokenLen       = wire.MaxTokenLen
	// MaxContextExtensions bounds the per-route context_extensions map (set by
	// the proxy's configuration, not by callers, but still outside input).
	MaxContextExtensions = 64
)

// ContextExtensionAction is the context_extensions key whose value is the
// route's action, as MeshGuard's xDS pushes it per route (SPEC §4: a route
// mapping; a different X-MeshGuard-Action is a relabel).
const ContextExtensionAction = "meshguard.action"

// ContextExtensionMinTier is the context_extensions key whose value is the
// lowest trust tier the route's service admits (the catalogue's minTier).
const ContextExtensionMinTier = "meshguard.min_tier"

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

// decision renders a rejection as the engine would render a denial, so
// Envoy and the caller see the same headers and body shape either way. It is
// a denial in every mode: the bounds protect MeshGuard itself.
func (rj *rejection) decision(r *engine.Request) engine.Decision {
	d := engine.Decision{
		ID: newID("dec_", 12), Effect: "deny", Status: rj.status, Reason: rj.reason, Message: rj.message,
		Source: r.Source, TraceID: r.TraceID, Time: time.Now(),
	}
	if d.TraceID == "" {
		d.TraceID = newID("", 16)
	}
	return d
}

// newID returns prefix + hex of n random bytes, as the engine's ids.
func newID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+)
	return prefix + hex.EncodeToString(b)
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
