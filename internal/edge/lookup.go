package edge

// The request's own headers, as the context conditions of policies read
// them (header.<name>). The engine asks for the few headers a policy names,
// so these views look them up in place rather than copy every header of
// every request. Each Lookup takes a lower-case name, compares names as
// SameName does, and returns the value and how many times the header
// appeared (0: absent), so a repeated header is never read as one value.

// SameName reports whether header name k is name (lower case), comparing
// case-insensitively and reading '_' as '-'. CGI-style servers (WSGI,
// Rack, PHP, anything behind FastCGI) put X-Env and X_Env both in
// HTTP_X_ENV, so to the upstream they may be one header: a policy reading
// x-env must see x_env too, and the two together as a repeat.
func SameName(k, name string) bool {
	if len(k) != len(name) {
		return false
	}
	for i := 0; i < len(k); i++ {
		a, b := k[i], name[i]
		if a == b {
			continue
		}
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		} else if a == '_' {
			a = '-'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		} else if b == '_' {
			b = '-'
		}
		if a != b {
			return false
		}
	}
	return true
}

// MapHeaders is the headers map of Envoy's CheckRequest, repeats already
// joined with commas by Envoy.
type MapHeaders map[string]string

// Lookup implements the engine's view of request headers.
func (m MapHeaders) Lookup(name string) (value string, n int) {
	for k, v := range m {
		if SameName(k, name) {
			value, n = v, n+1
		}
	}
	return value, n
}

// PairHeaders is a list of headers in the order they arrived (the wasm
// filter's, a CheckRequest's header_map).
type PairHeaders [][2]string

// Lookup implements the engine's view of request headers.
func (p PairHeaders) Lookup(name string) (value string, n int) {
	for _, kv := range p {
		if SameName(kv[0], name) {
			value, n = kv[1], n+1
		}
	}
	return value, n
}

// MultiHeaders is net/http's header map (http.Header).
type MultiHeaders map[string][]string

// Lookup implements the engine's view of request headers.
func (m MultiHeaders) Lookup(name string) (value string, n int) {
	for k, vs := range m {
		if SameName(k, name) && len(vs) > 0 {
			value, n = vs[len(vs)-1], n+len(vs)
		}
	}
	return value, n
}

// IsMeshGuardHeader reports whether name starts with "x-meshguard-", in
// any case, with '_' read as '-': only MeshGuard speaks those headers to
// an upstream, and X_MeshGuard_Agent_Id is X-MeshGuard-Agent-Id to
// CGI-style servers.
func IsMeshGuardHeader(name string) bool {
	const prefix = "x-meshguard-"
	return len(name) >= len(prefix) && SameName(name[:len(prefix)], prefix)
}
