package edge

import (
	"strconv"
	"strings"
)

// Bounds on the request headers an enforcement point reads
// (docs/enforcement.md#bounds). Each is above Envoy's default (100 request
// headers, max_request_headers_kb 60), so a request Envoy accepts with its
// defaults passes; beyond them the request is denied with a 400 before the
// engine sees it.
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
)

// The request headers enforcement points read, by index (HeaderScan.Get).
const (
	HAuthorization = iota
	HDelegation
	HTraceparent
	HForwardedFor
	HAuthority // the pseudo headers are fallbacks for empty attributes
	HHost
	HMethod
	HPath
	nHeaders
)

var headerNames = [nHeaders]string{
	"authorization", "x-meshguard-delegation", "traceparent", "x-forwarded-for", ":authority", "host", ":method", ":path",
}

// lookup returns the index of a header the adapters read, or -1. Names are
// compared case-insensitively: Envoy lower-cases them in CheckRequests, but
// net/http canonicalises them, and a hostile client may do neither. Every
// name has a distinct length, so this is one comparison and no allocation.
func lookup(name string) int {
	i := -1
	switch len(name) {
	case 13:
		i = HAuthorization
	case 22:
		i = HDelegation
	case 11:
		i = HTraceparent
	case 15:
		i = HForwardedFor
	case 10:
		i = HAuthority
	case 4:
		i = HHost
	case 7:
		i = HMethod
	case 5:
		i = HPath
	}
	if i < 0 || !strings.EqualFold(name, headerNames[i]) {
		return -1
	}
	return i
}

// HeaderScan accumulates a request's headers: it counts and bounds all of
// them and keeps the values of the few enforcement points read. The zero
// value is ready; feed it every header with Add.
type HeaderScan struct {
	vals         [nHeaders]string
	seen         uint16
	count, bytes int
	dupTrace     bool
	bad          string // the first bound broken; the request is denied with it
}

// Count adds n bytes to the headers' total without a header, for what a
// server holds apart (net/http's Host).
func (s *HeaderScan) Count(n int) { s.bytes += n }

// Bad is the first bound broken, or ""; the request must then be denied
// with it (400).
func (s *HeaderScan) Bad() string { return s.bad }

// Get returns the value of header i (HAuthorization, …), "" if absent.
func (s *HeaderScan) Get(i int) string { return s.vals[i] }

// Traceparent returns the traceparent header, "" when there was none or
// more than one (W3C Trace Context: several are invalid together).
func (s *HeaderScan) Traceparent() string {
	if s.dupTrace {
		return ""
	}
	return s.vals[HTraceparent]
}

// Add takes one header; it returns false once a bound is broken.
func (s *HeaderScan) Add(name, value string) bool {
	s.count++
	s.bytes += len(name) + len(value)
	switch {
	case s.count > MaxHeaders:
		s.bad = "more than " + strconv.Itoa(MaxHeaders) + " request headers"
	case len(value) > MaxHeaderValueLen: // before the total: it names the culprit
		s.bad = "header " + QuoteName(name) + " is longer than the limit of " + strconv.Itoa(MaxHeaderValueLen) + " bytes"
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
		case HTraceparent:
			// W3C Trace Context: several traceparent headers are invalid
			// together; the engine starts a new trace.
			s.dupTrace = true
		case HAuthorization, HDelegation:
			s.bad = Repeated(headerNames[i])
			return false
		case HForwardedFor:
			// One list however many lines it came in (ClientAddr reads
			// it from the right, where the proxies append).
			s.vals[i] += "," + value
		}
		return true // the fallbacks: the first counts
	}
	s.seen |= 1 << i
	s.vals[i] = value
	if i == HAuthorization || i == HDelegation {
		if msg := CheckCredential(headerNames[i], value); msg != "" {
			s.bad = msg
			return false
		}
	}
	return true
}

// Repeated is the message for a credential header sent more than once.
// Which one would count is ambiguous (the upstream may read the other), so
// every enforcement point refuses the request with 400 rather than guess.
func Repeated(name string) string {
	return "header " + name + " appears more than once"
}

// CheckCredentialHeaders applies Repeated and CheckCredential to a
// net/http request's Authorization and X-MeshGuard-Delegation headers, as
// the gateway and the agent API (/v1/check, /v1/delegations) receive them.
// It returns "" or the message to refuse the request with (400).
func CheckCredentialHeaders(h map[string][]string) string {
	for _, name := range [...]string{"Authorization", "X-Meshguard-Delegation"} {
		switch vs := h[name]; {
		case len(vs) > 1:
			return Repeated(strings.ToLower(name))
		case len(vs) == 1:
			if msg := CheckCredential(strings.ToLower(name), vs[0]); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// CheckCredential checks one value of a credential header (Authorization,
// X-MeshGuard-Delegation) as received: within MaxTokenLen, and no comma.
// Envoy joins a repeated header's values with commas in a CheckRequest,
// and a token never holds one, so a comma means the header came twice (or
// holds a list): the same 400 as a repeat, at every enforcement point.
// It returns "" or the message to refuse the request with.
func CheckCredential(name, value string) string {
	switch {
	case len(value) > MaxTokenLen:
		return "header " + name + " is longer than the limit of " + strconv.Itoa(MaxTokenLen) + " bytes"
	case strings.IndexByte(value, ',') >= 0:
		return "header " + name + " holds more than one value (it was sent twice, or holds a list); send one"
	}
	return ""
}

// QuoteName quotes a header name for a message, cut short: the name is
// attacker-controlled and the message is echoed in the deny body.
func QuoteName(name string) string {
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return strconv.Quote(name)
}

// MergeRepeated joins the values of a repeated header with commas, keeping
// the order of first appearance, as Envoy does in a CheckRequest's headers
// map. An enforcement point that sees a request's headers apart (the wasm
// filter) merges them first, so it decides as ext_authz does: two
// Authorization headers are one value with a comma (a 400), two of a
// header a policy reads one value that holds a list (a 400 too).
//
// Beyond MaxHeaders it returns hs as it is (the scan refuses it anyway), so
// the quadratic merge stays bounded.
func MergeRepeated(hs [][2]string) [][2]string {
	if len(hs) > MaxHeaders {
		return hs
	}
	out := make([][2]string, 0, len(hs))
	for _, kv := range hs {
		merged := false
		for i := range out {
			if strings.EqualFold(out[i][0], kv[0]) {
				out[i][1] += "," + kv[1]
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, kv)
		}
	}
	return out
}
