package policy

import (
	"slices"
	"strings"
)

// Context keys that name what a request really carries. At the enforcement
// points that see the real request (Envoy ext_authz, the gateway, the wasm
// filter) these are the only context a policy can read: the caller cannot
// choose them independently of what the upstream receives. POST /v1/check
// takes its context from the SDK as given.
const (
	// HeaderKeyPrefix + a lower-case header name: that request header.
	HeaderKeyPrefix = "header."
	// QueryKeyPrefix + a parameter name: that query parameter, decoded.
	QueryKeyPrefix = "query."
	// ArgumentsKeyPrefix + a dot path: that argument of an MCP tool call
	// (or prompt), read from the body the upstream receives
	// (docs/mcp.md): arguments.to, arguments.options.cc.
	ArgumentsKeyPrefix = "arguments."
)

// IsArgumentsKey reports whether a context key reads an MCP call's
// arguments.
func IsArgumentsKey(key string) bool { return strings.HasPrefix(key, ArgumentsKeyPrefix) }

// credentialHeaders never become context: a decision's context is kept in
// its audit record, and conditions on who calls belong in appliesTo.
var credentialHeaders = []string{"authorization", "proxy-authorization", "cookie"}

// hopByHopHeaders are removed by every proxy on the way (RFC 9110 7.6.1;
// Envoy and the gateway drop them), so the upstream never receives what a
// policy would read there.
var hopByHopHeaders = []string{"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}

// checkContextKey returns why a context key can never be read as written,
// or "". Keys outside the request namespaces are free (POST /v1/check).
func checkContextKey(key string) string {
	const use = "read the request's own headers (header.<name>) and query parameters (query.<name>)"
	name, isHeader := strings.CutPrefix(key, HeaderKeyPrefix)
	if !isHeader {
		if n, ok := strings.CutPrefix(key, QueryKeyPrefix); ok && n == "" {
			return "query. needs a parameter name (query.<name>)"
		}
		if p, ok := strings.CutPrefix(key, ArgumentsKeyPrefix); ok && (p == "" || slices.Contains(strings.Split(p, "."), "")) {
			return "arguments. needs a dot path of argument names (arguments.to, arguments.options.cc), without empty segments"
		}
		if strings.HasPrefix(strings.ToLower(key), "x-meshguard-") {
			return "X-MeshGuard-* headers are not context: " + use
		}
		return ""
	}
	// Headers are read with '_' as '-' (edge.SameName), so the names
	// refused here are too.
	lower := strings.ToLower(name)
	dashed := strings.ReplaceAll(lower, "_", "-")
	switch {
	case name == "":
		return "header. needs a header name (header.<name>)"
	case !isToken(name):
		return "header." + name + ": not an HTTP header name"
	case strings.HasPrefix(dashed, "x-meshguard-"):
		return "MeshGuard's own headers are not request context: where MeshGuard sees the real request the action comes from the route (config routes:, the service catalogue), the resource is the request's path (conditions.resource), and X-MeshGuard-Context is ignored; " + use
	case dashed == "host":
		return "the host is not request context: enforcement points read it differently (:authority, Host, the gateway's target); match it with a route (config routes: host)"
	case slices.Contains(credentialHeaders, dashed):
		return "header." + dashed + " is a credential: MeshGuard never puts credentials in a decision's context or audit record; conditions on the caller belong in appliesTo and chain"
	case slices.Contains(hopByHopHeaders, dashed):
		return "header." + dashed + " is hop-by-hop: proxies remove it before the upstream, which never receives what a policy would read there"
	case name != lower:
		return "header names are read in lower case: write " + HeaderKeyPrefix + lower
	}
	return ""
}

// isToken reports whether s is an HTTP field name (RFC 9110 token).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// RequestKeys lists the context keys of the set's rules that read the
// request itself (header.*, query.*, arguments.*), sorted, each once: what
// an enforcement point that sees the real request puts in the context.
func (s *Set) RequestKeys() []string { return s.requestKeys }

// requestKeys collects the request keys of compiled policies.
func requestKeys(ps []*compiledPolicy) []string {
	var keys []string
	for _, p := range ps {
		for i := range p.rules {
			if c := p.rules[i].cond; c != nil {
				for j := range c.context {
					if k := c.context[j].key; strings.HasPrefix(k, HeaderKeyPrefix) || strings.HasPrefix(k, QueryKeyPrefix) || IsArgumentsKey(k) {
						keys = append(keys, k)
					}
				}
			}
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// ArgumentValue is the value at a dot path (to, options.cc) in a call's
// arguments: what the key arguments.<path> reads.
func ArgumentValue(args map[string]any, path string) (any, bool) {
	var cur any = args
	for path != "" {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		name := path
		if i := strings.IndexByte(path, '.'); i >= 0 {
			name, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		if cur, ok = m[name]; !ok {
			return nil, false
		}
	}
	return cur, true
}
