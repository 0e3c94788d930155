package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/edge"
)

// Canonical header keys, so lookups need no canonicalisation.
const (
	hAuthorization = "Authorization"
	hDelegation    = "X-Meshguard-Delegation"
	hTraceparent   = "Traceparent"
	hForwardedFor  = "X-Forwarded-For"
)

// checkShape refuses requests the gateway cannot forward faithfully. It
// returns the upstream path (Prefix stripped), or a status and a message.
func (g *Gateway) checkShape(r *http.Request) (path string, status int, msg string) {
	switch {
	case r.Method == http.MethodConnect:
		return "", http.StatusMethodNotAllowed, "CONNECT is not supported: the gateway forwards " + Prefix + "/* requests, it opens no tunnels"
	case r.URL.IsAbs() || r.URL.Host != "":
		return "", http.StatusBadRequest, "absolute-form request target: the gateway is not a forward proxy; send the path, " + Prefix + "/…, as the request target"
	case headersExceed(r, g.maxHeader):
		return "", http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("the request line and headers exceed the gateway's limit of %d bytes", g.maxHeader)
	}
	// Credentials once, one value each: with two, MeshGuard would decide
	// on one and the upstream might act on the other.
	if msg := edge.CheckCredentialHeaders(r.Header); msg != "" {
		return "", http.StatusBadRequest, msg
	}
	return upstreamPath(r.URL)
}

// headersExceed reports whether the request line and headers, counted as
// on the wire, are larger than limit bytes.
func headersExceed(r *http.Request, limit int) bool {
	n := len(r.Method) + len(r.RequestURI) + len("  HTTP/1.1\r\nHost: \r\n") + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			if n += len(k) + len(v) + len(": \r\n"); n > limit {
				return true
			}
		}
	}
	return n > limit
}

// upstreamPath strips Prefix from the request's path and returns it
// escaped, or refuses a path that the policy and the upstream could read
// differently. The path is the one the caller sent, with its
// percent-encoding normalised (edge.NormalizePath: "/%61dmin" is
// "/admin", "%2b" is "%2B", "!" and "%21" stay apart) and any byte a path
// may not hold encoded (edge.EscapePath): the engine decides on exactly
// what the upstream receives, and on what ext_authz would decide on for
// the same path behind Envoy, so an escape cannot hide a letter from a
// policy and a rule matches at every enforcement point alike. It refuses:
//
//   - "." and ".." segments and empty segments ("//"): an upstream that
//     normalises them would serve another resource than the one decided;
//   - encoded "/" or "\" (%2F, %5C), and "\", "?", "#" or control
//     characters once decoded: they change where segments, the path or
//     the query end, depending on who reads them.
//
// A hardened Envoy handles the same cases (normalize_path, merge_slashes,
// path_with_escaped_slashes_action); the gateway refuses rather than
// rewrites, so what it decides is what the caller asked for.
func upstreamPath(u *url.URL) (string, int, string) {
	p := u.Path
	if p != Prefix && !strings.HasPrefix(p, Prefix+"/") {
		return "", http.StatusNotFound, "the gateway serves " + Prefix + "/*"
	}
	p = p[len(Prefix):]
	if p == "" {
		return "/", 0, ""
	}
	if raw := u.RawPath; raw != "" && containsFold(raw, "%2f", "%5c") {
		return "", http.StatusBadRequest, "path: encoded \"/\" or \"\\\" (%2F, %5C) is not accepted"
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' || c == '?' || c == '#' {
			return "", http.StatusBadRequest, fmt.Sprintf("path: character %q is not accepted, encoded or not", c)
		}
	}
	rest := p[1:] // p starts with "/"
	for rest != "" {
		seg, tail, more := strings.Cut(rest, "/")
		switch {
		case seg == "." || seg == "..":
			return "", http.StatusBadRequest, "path: \".\" and \"..\" segments are not accepted"
		case seg == "" && more:
			return "", http.StatusBadRequest, "path: empty segments (\"//\") are not accepted"
		}
		rest = tail
	}
	// The path as it came (RawPath is set whenever it differs from Go's
	// own escaping of Path), in the form ext_authz decides on.
	raw := u.RawPath
	if raw == "" {
		raw = u.EscapedPath()
	}
	n, ok := edge.NormalizePath(edge.EscapePath(raw))
	if !ok || !strings.HasPrefix(n, Prefix+"/") {
		// url.Parse checked the escapes, and Prefix is unreserved
		// characters only, so neither can happen; refuse rather than guess.
		return "", http.StatusBadRequest, "path: malformed percent-encoding"
	}
	return n[len(Prefix):], 0, ""
}

func containsFold(s string, subs ...string) bool {
	for _, sub := range subs {
		for i := 0; i+len(sub) <= len(s); i++ {
			if strings.EqualFold(s[i:i+len(sub)], sub) {
				return true
			}
		}
	}
	return false
}

// engineRequest is the question the gateway asks the engine.
//
// Host is the upstream's host, not the Host the caller sent (which names
// the gateway): PROXY_TARGET's, or the service's first host with its port.
// The request goes there, so that host decides the route mapping and
// whether the call hands a task to another agent, as the :authority does
// behind Envoy.
func (g *Gateway) engineRequest(r *http.Request, path, host string, client netip.Addr, xf http.Header) *engine.Request {
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	req := &engine.Request{
		Source:     engine.SourceGateway,
		Token:      bearer(r.Header[hAuthorization]),
		Delegation: first(r.Header[hDelegation]),
		Principal:  peerPrincipal(r.TLS),
		Method:     r.Method,
		Host:       host,
		Path:       path,
		Headers:    forwardedHeaders{r.Header, xf},
	}
	if tp := r.Header[hTraceparent]; len(tp) == 1 {
		// Exactly one, or none: with two, the engine starts a trace.
		req.SetTraceparent(tp[0])
	}
	if client.IsValid() {
		req.SourceAddress = client.String()
	}
	return req
}

// forwardedHeaders are the request's headers as the upstream receives
// them, for the policies' header.* keys: without those the caller names in
// Connection, which ReverseProxy removes as hop-by-hop, and with the
// gateway's own X-Forwarded-* (xf) for the caller's. Otherwise
// "X-Env: staging" with "Connection: X-Env" would be decided as a staging
// request while the upstream sees no X-Env at all, and a caller's
// "X-Forwarded-Proto: https" over plain HTTP would be decided on while the
// upstream reads "http". (Policies cannot name the fixed hop-by-hop
// headers, Connection itself included.)
type forwardedHeaders struct {
	h  http.Header
	xf http.Header // xForwarded's: replaces every spelling of those names
}

// Lookup implements engine.Headers, as edge.MultiHeaders does.
func (h forwardedHeaders) Lookup(name string) (value string, n int) {
	if isForwarding(name) {
		for k, vs := range h.xf {
			if edge.SameName(k, name) {
				return vs[0], 1
			}
		}
		return "", 0
	}
	for k, vs := range h.h {
		if edge.SameName(k, name) && len(vs) > 0 && !h.hopByHop(k) {
			value, n = vs[len(vs)-1], n+len(vs)
		}
	}
	return value, n
}

// hopByHop reports whether a Connection header names k, as ReverseProxy
// reads it (each comma-separated token, trimmed, case-insensitively).
func (h forwardedHeaders) hopByHop(k string) bool {
	for _, v := range h.h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(token), k) {
				return true
			}
		}
	}
	return false
}

// forwardingHeaders say where a request came from and how. The gateway
// writes X-Forwarded-For, -Host and -Proto itself and sends none of the
// caller's, in any spelling: an upstream that reads X_Forwarded_For as
// X-Forwarded-For (CGI and WSGI servers do) would otherwise take a
// remote client's word for its address. Forwarded (RFC 7239) is removed,
// as ReverseProxy does, in every spelling too.
var forwardingHeaders = [...]string{"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded"}

func isForwarding(name string) bool {
	for _, f := range forwardingHeaders {
		if edge.SameName(name, f) {
			return true
		}
	}
	return false
}

// xForwarded is what the gateway tells the upstream about the request's
// way: the X-Forwarded-For received from a trusted peer (a proxy on this
// machine) with the peer appended, else the peer alone; the Host the
// caller sent; http or https. It is computed once, so that the engine
// decides on the values the upstream receives (ProxyRequest.SetXForwarded's
// rule, which it replaces).
func xForwarded(r *http.Request, trustedPeer bool) http.Header {
	xf := http.Header{"X-Forwarded-Host": {r.Host}, "X-Forwarded-Proto": {"http"}}
	if r.TLS != nil {
		xf["X-Forwarded-Proto"][0] = "https"
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header[hForwardedFor]; trustedPeer && len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		xf[hForwardedFor] = []string{ip}
	}
	return xf
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// bearer returns the bearer token, "" unless there is exactly one
// Authorization header holding one.
func bearer(vs []string) string {
	if len(vs) != 1 {
		return ""
	}
	return edge.Bearer(vs[0])
}

// clientAddr returns the client's address (edge.ClientAddr: the
// X-Forwarded-For entries are read right to left from the peer while the
// hop is a trusted proxy, loopback) and whether the peer is such a proxy,
// whose X-Forwarded-For the gateway keeps when it forwards (xForwarded). Believing the
// header from anyone else would let a client pick a fresh rate-limit
// bucket, and a fresh SourceAddress in the audit trail, for every request.
func clientAddr(r *http.Request) (netip.Addr, bool) {
	peer := edge.ParseAddr(r.RemoteAddr)
	return edge.ClientAddr(peer, r.Header[hForwardedFor]...), edge.TrustedProxy(peer)
}

// limitKey is the rate-limit key of a client address. IPv6 clients are
// counted per /64: a host is usually given a whole /64 and could
// otherwise change address for every request.
func limitKey(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "gateway/ip/unknown" // e.g. a unix socket: one shared bucket
	case a.Is6():
		p, _ := a.Prefix(64)
		return "gateway/ip/" + p.String()
	}
	return "gateway/ip/" + a.String()
}
