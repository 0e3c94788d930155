// Package edge holds the rules for reading a request as it arrives at
// MeshGuard's edge, which every enforcement point applies the same way:
// the bearer credential and the W3C traceparent, the request-header scan
// (bounds, repeats, MeshGuard's own headers), the client address from
// X-Forwarded-For, path normalisation, the control-character rule for
// text, and claiming a path prefix before a ServeMux sees the request. One
// copy each, so ext_authz (gRPC and HTTP), the gateway, the agent API and
// the wasm filter cannot drift apart.
package edge

import (
	"net/http"
	"strconv"
	"strings"
)

// Mount sends requests whose raw path is prefix, or under it, to h and
// everything else to next. Enforcement points are mounted this way rather
// than on a ServeMux, which answers "/proxy" or "/a/../b" with a redirect
// that would reach the caller undecided. An absolute-form request target
// (GET http://host/proxy/x HTTP/1.1) goes where its path says, so the
// enforcement point answers it (the gateway refuses it with 400), not a
// ServeMux that has no such path.
func Mount(prefix string, h, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.RequestURI
		if target != "" && target[0] != '/' && r.URL != nil && r.URL.IsAbs() {
			target = r.URL.RequestURI()
		}
		if rest, ok := strings.CutPrefix(target, prefix); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Bearer returns the token of an "Authorization: Bearer <token>" value (the
// scheme is case-insensitive, RFC 7235), or "" for any other scheme or
// none. The engine answers "" with 401.
func Bearer(v string) string {
	const scheme = "bearer"
	v = strings.Trim(v, " \t")
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) || (v[len(scheme)] != ' ' && v[len(scheme)] != '\t') {
		return ""
	}
	return strings.Trim(v[len(scheme):], " \t")
}

// Traceparent is a parsed W3C traceparent header.
type Traceparent struct {
	TraceID string // 32 lower-case hex digits
	SpanID  string // the caller's span: 16 lower-case hex digits
	Sampled bool
}

// ParseTraceparent parses a W3C traceparent value
// (version-traceid-parentid-flags); ok is false if it is not valid.
// Version 00 must be exactly 55 bytes; a later version (not ff) may append
// fields after a dash, as the W3C spec asks parsers to accept.
func ParseTraceparent(tp string) (p Traceparent, ok bool) {
	tp = strings.Trim(tp, " \t")
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return p, false
	}
	version := tp[:2]
	switch {
	case !lowerHex(version) || version == "ff":
		return p, false
	case version == "00" && len(tp) != 55:
		return p, false
	case len(tp) > 55 && tp[55] != '-':
		return p, false
	}
	id, parent, flags := tp[3:35], tp[36:52], tp[53:55]
	if !ValidTraceID(id) || !lowerHex(parent) || !lowerHex(flags) || allZero(parent) {
		return p, false
	}
	f, _ := strconv.ParseUint(flags, 16, 8) // two lower-case hex digits, checked above
	return Traceparent{TraceID: id, SpanID: parent, Sampled: f&1 == 1}, true
}

// String is the traceparent header value (version 00).
func (p Traceparent) String() string {
	flags := "00"
	if p.Sampled {
		flags = "01"
	}
	return "00-" + p.TraceID + "-" + p.SpanID + "-" + flags
}

// TraceID returns the trace id of a traceparent value, or "" if it is not
// valid.
func TraceID(tp string) string {
	p, _ := ParseTraceparent(tp)
	return p.TraceID
}

// ValidTraceID reports whether s is a W3C trace id: 32 lower-case hex
// digits, not all zero.
func ValidTraceID(s string) bool {
	return len(s) == 32 && lowerHex(s) && !allZero(s)
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool { return strings.Trim(s, "0") == "" }
