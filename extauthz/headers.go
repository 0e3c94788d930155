package extauthz

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/wire"
)

// Bounds on what the adapters read (SPEC §12). Each is above Envoy's default
// (100 request headers, max_request_headers_kb 60), so a request Envoy
// accepts with its defaults passes; beyond them the request is denied with a
// 400 before the engine sees it.
const (
	// MaxHeaders is the number of request headers (values, counting repeats).
	MaxHeaders = 200
	// MaxHeaderBytes bounds the sum of every header's name and value.
	MaxHeaderBytes = 96 << 10
	// MaxHeaderValueLen bounds any one header value.
	MaxHeaderValueLen = 32 << 10
	// MaxTokenLen bounds the Authorization and X-MeshGuard-Delegation values;
	// identity refuses larger tokens anyway, this refuses them before parsing.
	MaxTokenLen = 8 << 10
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

// The request headers the adapters read, by index into scan.vals.
const (
	hAuthorization = iota
	hDelegation
	hAction
	hResource
	hContext
	hTraceparent
	hForwardedFor
	hAuthority // the pseudo headers are fallbacks for empty attributes
	hHost
	hMethod
	hPath
	nHeaders
)

var headerNames = [nHeaders]string{
	"authorization", engine.HeaderDelegation, engine.HeaderAction, engine.HeaderResource,
	engine.HeaderContext, "traceparent", "x-forwarded-for", ":authority", "host", ":method", ":path",
}

// lookup returns the index of a header the adapters read, or -1. Names are
// compared case-insensitively: Envoy lower-cases them in CheckRequests, but
// net/http canonicalises them, and a hostile client may do neither. Every
// name has a distinct length, so this is one comparison and no allocation.
func lookup(name string) int {
	i := -1
	switch len(name) {
	case 13:
		i = hAuthorization
	case 22:
		i = hDelegation
	case 18:
		i = hAction
	case 20:
		i = hResource
	case 19:
		i = hContext
	case 11:
		i = hTraceparent
	case 15:
		i = hForwardedFor
	case 10:
		i = hAuthority
	case 4:
		i = hHost
	case 7:
		i = hMethod
	case 5:
		i = hPath
	}
	if i < 0 || !strings.EqualFold(name, headerNames[i]) {
		return -1
	}
	return i
}

// scan accumulates a request's headers: it counts and bounds all of them and
// keeps the values of the few the adapters read.
type scan struct {
	vals         [nHeaders]string
	seen         uint16
	count, bytes int
	dupTrace     bool
	bad          string // the first bound broken; the request is denied with it
}

// add takes one header; it returns false once a bound is broken.
func (s *scan) add(name, value string) bool {
	s.count++
	s.bytes += len(name) + len(value)
	switch {
	case s.count > MaxHeaders:
		s.bad = "more than " + strconv.Itoa(MaxHeaders) + " request headers"
	case len(value) > MaxHeaderValueLen: // before the total: it names the culprit
		s.bad = "header " + quoteName(name) + " is longer than the limit of " + strconv.Itoa(MaxHeaderValueLen) + " bytes"
	case s.bytes > MaxHeaderBytes:
		s.bad = "request headers exceed the limit of " + strconv.Itoa(MaxHeaderBytes) + " bytes in total"
	}
	if s.bad != "" {
		return false
	}
	i := lookup(name)
	if i < 0 {
		return true
	}
	if s.seen&(1<<i) != 0 {
		switch i {
		case hTraceparent:
			// W3C Trace Context: several traceparent headers are invalid
			// together; the engine starts a new trace.
			s.dupTrace = true
		case hAuthorization, hDelegation, hAction, hResource, hContext:
			// Which one would count is ambiguous (the upstream may read
			// the other): refuse rather than guess.
			s.bad = "header " + headerNames[i] + " appears more than once"
			return false
		}
		return true // X-Forwarded-For and the fallbacks: the first counts
	}
	s.seen |= 1 << i
	s.vals[i] = value
	if (i == hAuthorization || i == hDelegation) && len(value) > MaxTokenLen {
		s.bad = "header " + headerNames[i] + " is longer than the limit of " + strconv.Itoa(MaxTokenLen) + " bytes"
		return false
	}
	return true
}

// fill copies what the scan found into r.
func (s *scan) fill(r *engine.Request) {
	r.Token = wire.Bearer(s.vals[hAuthorization])
	r.Delegation = s.vals[hDelegation]
	r.ActionHeader = s.vals[hAction]
	r.ResourceHeader = s.vals[hResource]
	r.ContextHeader = s.vals[hContext]
	if !s.dupTrace {
		r.SetTraceparent(s.vals[hTraceparent])
	}
}

// quoteName quotes a header name for a message, cut short: the name is
// attacker-controlled and the message is echoed in the deny body.
func quoteName(name string) string {
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return strconv.Quote(name)
}

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
