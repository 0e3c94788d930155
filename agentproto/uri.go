package agentproto

import (
	"errors"
	"fmt"
	"strings"
)

// ErrURINotNormal: a resource URI in a spelling that its normal form
// differs from (a dot segment, an escaped letter, an upper-case scheme…).
// A rule matches the URI as sent, while a server resolves it: allowed as
// read:files/file:///public/*, file:///public/../secrets/key is the
// secrets' key to a server that follows the path.
var ErrURINotNormal = errors.New("resource URI not in normal form")

// checkURI refuses a resource URI (params.uri) that a server may read as
// another one than its text says, as checkPath refuses such HTTP paths in
// the engine: a scheme or authority with upper-case letters, a file: URI
// without an empty authority (file://localhost/x and file:/x are
// file:///x), dot segments or empty segments in a hierarchical path, a
// fragment, a backslash, and a percent-escape that is malformed, in lower
// case, or of a character that needs none or of '/', '\' or '.'. What is
// left has one spelling, so a rule on read:S/<uri> means what it says.
func checkURI(u string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %w: %q %s", ErrBadRequest, ErrURINotNormal, u, why)
	}
	colon := strings.IndexByte(u, ':')
	if colon <= 0 || !isAlpha(u[0]) {
		return bad("has no scheme")
	}
	scheme := u[:colon]
	for i := 0; i < len(scheme); i++ {
		c := scheme[i]
		switch {
		case 'A' <= c && c <= 'Z':
			return bad("has a scheme in upper case")
		case !isAlpha(c) && (c < '0' || c > '9') && c != '+' && c != '-' && c != '.':
			return bad("has no scheme")
		}
	}
	if strings.IndexByte(u, '#') >= 0 {
		return bad("has a fragment")
	}
	if strings.IndexByte(u, '\\') >= 0 {
		return bad("has a backslash")
	}
	for i := 0; i < len(u); i++ {
		if u[i] != '%' {
			continue
		}
		if i+2 >= len(u) || !isUpperHex(u[i+1]) || !isUpperHex(u[i+2]) {
			return bad("has a malformed or lower-case percent-escape")
		}
		if c := unhex(u[i+1])<<4 | unhex(u[i+2]); isAlpha(c) || c >= '0' && c <= '9' || strings.IndexByte("-._~/\\", c) >= 0 {
			return bad(fmt.Sprintf("escapes %q, which servers decode before they resolve the path", c))
		}
	}
	rest := u[colon+1:]
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q]
	}
	path := rest
	if auth, ok := strings.CutPrefix(rest, "//"); ok {
		end := strings.IndexByte(auth, '/')
		if end < 0 {
			end = len(auth)
		}
		authority := auth[:end]
		path = auth[end:]
		if strings.ToLower(authority) != authority {
			return bad("has an authority with upper-case letters")
		}
		if scheme == "file" && authority != "" {
			return bad("names a host: write file:///path")
		}
	} else if scheme == "file" {
		return bad("has no authority: write file:///path")
	}
	if !strings.HasPrefix(path, "/") {
		return nil // opaque (urn:…, mailto:…): no path to resolve
	}
	segs := strings.Split(path[1:], "/")
	for i, s := range segs {
		switch {
		case s == "." || s == "..":
			return bad("has a dot segment")
		case s == "" && i != len(segs)-1 && len(segs) > 1:
			return bad("has an empty path segment")
		}
	}
	return nil
}

func isAlpha(c byte) bool    { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
