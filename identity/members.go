package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/meshguard/meshguard/internal/edge"
)

// Duplicate and case-variant member names. RFC 7515 §4 and RFC 7519 §4 let
// a JWT parser either refuse duplicate names or keep the last one;
// encoding/json keeps the last and also matches struct fields ignoring case
// ("SUB", "ſub" and "\u0073ub" all fill sub). Another reader of the same
// token (Envoy's jwt_authn, an upstream's library) may keep the first, or
// match names exactly. A token two readers could read differently is
// refused, so every header and claims object must spell each member once,
// exactly.

var (
	errMemberTwice = errors.New("appears twice (member names must be unique, also ignoring case)")
	errMemberCase  = errors.New("differs only in case from a member MeshGuard reads (names are case-sensitive)")
)

// Names the verifier reads; any other spelling of them is refused.
var (
	headerNames     = []string{"alg", "kid", "typ"}
	agentClaimNames = []string{"iss", "sub", "aud", "name", "tier", "tags", "iat", "nbf", "exp", "jti"}
	delegClaimNames = []string{"iss", "aud", "sub", "act", "scope", "max_chain", "iat", "nbf", "exp", "jti", "traceparent", "by_jti"}
)

// checkMembers walks a JSON value that json.Unmarshal has accepted (it
// must not be given any other) and returns an error wrapping
// errMemberTwice or errMemberCase, naming the member, for the first
// object, at any depth, whose names collide as encoding/json compares them
// (bytes.EqualFold after unescaping), or that spells one of names in
// another case. It reads
// the bytes in place and allocates only for names with escapes or non-ASCII
// bytes. The token is at most MaxTokenSize bytes, which bounds depth and
// work; an object with many members is checked with a map.
func checkMembers(raw []byte, names []string) error {
	s := memberScanner{b: raw, names: names}
	return s.value()
}

type memberScanner struct {
	b     []byte
	i     int
	names []string
}

func (s *memberScanner) ws() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// str moves past the string at s.i and returns its raw bytes (without the
// quotes) and whether they need decoding.
func (s *memberScanner) str() (raw []byte, plain bool) {
	start := s.i + 1
	plain = true
	for s.i++; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '\\':
			plain = false
			s.i++
		case c == '"':
			s.i++
			return s.b[start : s.i-1], plain
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return s.b[start:], plain
}

func (s *memberScanner) value() error {
	s.ws()
	if s.i >= len(s.b) {
		return errors.New("unexpected end of JSON")
	}
	switch s.b[s.i] {
	case '{':
		return s.object()
	case '[':
		s.i++
		for {
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ']' {
				s.i++
				return nil
			}
			if err := s.value(); err != nil {
				return err
			}
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ',' {
				s.i++
			}
		}
	case '"':
		s.str()
	default: // number, true, false, null
		for ; s.i < len(s.b); s.i++ {
			if c := s.b[s.i]; c == ',' || c == ']' || c == '}' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
		}
	}
	return nil
}

func (s *memberScanner) object() error {
	s.i++
	var buf [16][]byte
	seen := buf[:0]
	var many map[string]bool // folded names, once seen outgrows buf
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] == '}' {
			s.i++
			return nil
		}
		raw, plain := s.str()
		name := raw
		if !plain {
			var dec string
			if err := json.Unmarshal(s.b[s.i-len(raw)-2:s.i], &dec); err != nil {
				return err
			}
			name = []byte(dec)
		}
		if many == nil {
			for _, prev := range seen {
				if bytes.EqualFold(prev, name) {
					return memberError(name, errMemberTwice)
				}
			}
			seen = append(seen, name)
			if len(seen) == len(buf) {
				many = make(map[string]bool, 2*len(buf))
				for _, prev := range seen {
					many[foldName(string(prev))] = true
				}
			}
		} else {
			f := foldName(string(name))
			if many[f] {
				return memberError(name, errMemberTwice)
			}
			many[f] = true
		}
		for _, n := range s.names {
			// An ASCII name can only fold to an ASCII name of its length.
			if (!plain || len(name) == len(n)) && string(name) != n && bytes.EqualFold(name, []byte(n)) {
				return memberError(name, errMemberCase)
			}
		}
		s.ws()
		s.i++ // the colon
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
		}
	}
}

// memberError names the member (quoted, so a hostile name cannot forge a
// log line) in front of why it is refused.
func memberError(name []byte, why error) error {
	return fmt.Errorf("member %s %w", edge.QuoteName(string(name)), why)
}

// foldName folds a name as encoding/json does when it matches a member to
// a struct field: foldName(a) == foldName(b) exactly when bytes.EqualFold(a, b).
func foldName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		b.WriteRune(unicode.ToUpper(unicode.ToLower(r)))
	}
	return b.String()
}
