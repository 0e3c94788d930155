package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// appendCanonicalJSON appends the canonical encoding of the JSON object raw
// — what encoding/json's Marshal writes for the value Decode (UseNumber)
// reads from it: object keys sorted, no insignificant whitespace, numbers
// as written, strings escaped as Marshal escapes them — without building
// that value: the writer digests every tool call's arguments, and the
// reflection of decoding and encoding them cost tens of microseconds for
// 2 KB. A key repeated in one object is refused (the parser refused it
// already; Decode would keep the last). canonical_test.go holds it to
// encoding/json's result.
func appendCanonicalJSON(out, raw []byte) ([]byte, error) {
	p := canonParser{s: raw}
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, fmt.Errorf("%w: not an object", ErrBadArguments)
	}
	out, err := p.value(out, 0)
	if err != nil {
		return nil, err
	}
	if p.ws(); p.i != len(p.s) {
		return nil, fmt.Errorf("%w: data after the object", ErrBadArguments)
	}
	return out, nil
}

// maxCanonDepth bounds nesting (the parser's bound is 64).
const maxCanonDepth = 256

type canonParser struct {
	s []byte
	i int
}

func (p *canonParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *canonParser) bad(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrBadArguments, what, p.i)
}

type canonMember struct {
	key string
	val []byte
}

func (p *canonParser) value(out []byte, depth int) ([]byte, error) {
	if depth > maxCanonDepth {
		return nil, p.bad("nesting too deep")
	}
	p.ws()
	if p.i >= len(p.s) {
		return nil, p.bad("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(out, depth)
	case c == '[':
		p.i++
		out = append(out, '[')
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return append(out, ']'), nil
		}
		for n := 0; ; n++ {
			if n > 0 {
				out = append(out, ',')
			}
			var err error
			if out, err = p.value(out, depth+1); err != nil {
				return nil, err
			}
			p.ws()
			if p.i >= len(p.s) {
				return nil, p.bad("unterminated array")
			}
			p.i++
			switch p.s[p.i-1] {
			case ',':
			case ']':
				return append(out, ']'), nil
			default:
				return nil, p.bad("expected , or ]")
			}
		}
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return appendMarshalString(out, s), nil // no copy: s is raw's when unescaped
	case c == 't':
		return p.literal(out, "true")
	case c == 'f':
		return p.literal(out, "false")
	case c == 'n':
		return p.literal(out, "null")
	default:
		start := p.i
		if !p.number() {
			return nil, p.bad("invalid value")
		}
		return append(out, p.s[start:p.i]...), nil
	}
}

func (p *canonParser) object(out []byte, depth int) ([]byte, error) {
	p.i++ // {
	var ms []canonMember
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return append(out, '{', '}'), nil
	}
	for {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.bad("expected a key")
		}
		kb, err := p.str()
		if err != nil {
			return nil, err
		}
		k := string(kb)
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.bad("expected :")
		}
		p.i++
		v, err := p.value(nil, depth+1)
		if err != nil {
			return nil, err
		}
		ms = append(ms, canonMember{k, v})
		p.ws()
		if p.i >= len(p.s) {
			return nil, p.bad("unterminated object")
		}
		p.i++
		if c := p.s[p.i-1]; c == '}' {
			break
		} else if c != ',' {
			return nil, p.bad("expected , or }")
		}
	}
	slices.SortFunc(ms, func(a, b canonMember) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	out = append(out, '{')
	for i, m := range ms {
		if i > 0 {
			if m.key == ms[i-1].key {
				return nil, fmt.Errorf("%w: key %q repeated", ErrBadArguments, m.key)
			}
			out = append(out, ',')
		}
		out = appendMarshalString(out, m.key)
		out = append(out, ':')
		out = append(out, m.val...)
	}
	return append(out, '}'), nil
}

// str reads a string token and returns its value: its bytes in raw when
// it has no escape (the common case), else as encoding/json decodes it.
func (p *canonParser) str() ([]byte, error) {
	start := p.i
	p.i++
	escaped := false
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			p.i++
			if !escaped && utf8.Valid(p.s[start+1:p.i-1]) {
				return p.s[start+1 : p.i-1], nil
			}
			// Escapes, or invalid UTF-8 (which decodes as U+FFFD).
			var s string
			if err := json.Unmarshal(p.s[start:p.i], &s); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadArguments, err)
			}
			return []byte(s), nil
		case c == '\\':
			escaped = true
			p.i += 2
		case c < 0x20:
			return nil, p.bad("control character in a string")
		default:
			p.i++
		}
	}
	return nil, p.bad("unterminated string")
}

func (p *canonParser) literal(out []byte, lit string) ([]byte, error) {
	if !bytes.HasPrefix(p.s[p.i:], []byte(lit)) {
		return nil, p.bad("invalid literal")
	}
	p.i += len(lit)
	return append(out, lit...), nil
}

// number scans a JSON number (RFC 8259's grammar).
func (p *canonParser) number() bool {
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.s) && p.s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case digits() == 0:
		return false
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// appendMarshalString appends s as encoding/json's Marshal writes a
// string: <, > and & as \u003c etc., the short escapes, other controls as
// \u00XX, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendMarshalString[S string | []byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune([]byte(s[i:]))
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
