package edge

import "strings"

// NormalizePath applies RFC 3986's safe normalisations (6.2.2) to a path
// as it arrived: percent-encoded unreserved characters (letters, digits,
// - . _ ~) are decoded, since "/docs/%70rivate" and "/docs/private" are
// the same resource to every server, and other escapes are upper-cased.
// Nothing else changes: "%21" and "!" stay apart, as the RFC has them.
// Without this, rules and routes written for /docs/private would not see
// a request that spells it differently. ok is false for a malformed
// escape. The engine decides on this form of the path at every
// enforcement point, and the gateway forwards it.
func NormalizePath(p string) (string, bool) {
	if strings.IndexByte(p, '%') < 0 {
		return p, true
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b.WriteByte(p[i])
			continue
		}
		if i+2 >= len(p) || Unhex(p[i+1]) < 0 || Unhex(p[i+2]) < 0 {
			return "", false
		}
		c := byte(Unhex(p[i+1])<<4 | Unhex(p[i+2]))
		if unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
		}
		i += 2
	}
	return b.String(), true
}

// EscapePath percent-encodes the bytes of a raw path that RFC 3986 does
// not allow in one (anything but unreserved characters, sub-delimiters,
// ':', '@', '/' and '%'), and leaves the rest as they are: "!" stays "!"
// and "%21" stays "%21", so a path that is valid as it came is unchanged,
// and is decided as an Envoy in front of ext_authz would pass it.
func EscapePath(p string) string {
	n := 0
	for i := 0; i < len(p); i++ {
		if !pathByte(p[i]) {
			n++
		}
	}
	if n == 0 {
		return p
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(p)+2*n)
	for i := 0; i < len(p); i++ {
		if c := p[i]; pathByte(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// pathByte: unreserved, sub-delims, ':', '@', '/' and '%' (RFC 3986, 3.3).
func pathByte(c byte) bool {
	return unreserved(c) || strings.IndexByte("!$&'()*+,;=:@/%", c) >= 0
}

// Unhex is the value of the hex digit c, or -1: percent-decoding of paths
// (NormalizePath) and of query values (the engine) reads digits alike.
func Unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
