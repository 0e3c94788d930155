package wire

import "strings"

// The request's own headers, as the context conditions of policies read
// them (header.<name>). The engine asks for the few headers a policy names,
// so these views look them up in place rather than copy every header of
// every request. Each Lookup takes a lower-case name, compares names
// case-insensitively, and returns the value and how many times the header
// appeared (0: absent), so a repeated header is never read as one value.

// MapHeaders is the headers map of Envoy's CheckRequest, repeats already
// joined with commas by Envoy.
type MapHeaders map[string]string

// Lookup implements the engine's view of request headers.
func (m MapHeaders) Lookup(name string) (value string, n int) {
	for k, v := range m {
		if strings.EqualFold(k, name) {
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
		if strings.EqualFold(kv[0], name) {
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
		if strings.EqualFold(k, name) && len(vs) > 0 {
			value, n = vs[len(vs)-1], n+len(vs)
		}
	}
	return value, n
}
