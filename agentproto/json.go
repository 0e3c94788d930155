package agentproto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// A strict JSON reader (RFC 8259) that refuses what lenient readers
// resolve differently: a repeated key in one object (first-wins and
// last-wins servers both exist), two keys one case-fold apart (Go's
// encoding/json matches struct fields case-insensitively, last wins),
// invalid UTF-8 or a lone surrogate (replaced by U+FFFD by some, refused by
// others), a byte-order mark, nesting deeper than MaxDepth, and anything
// after the value. What it returns is what every reader of the same bytes
// must agree on. Numbers stay json.Number, so re-encoding keeps them
// exactly.

type parser struct {
	b     []byte
	i     int
	depth int
	// keys is reused across objects to spot case-fold duplicates.
	keys []string
}

func decodeStrict(b []byte) (any, error) {
	p := &parser{b: b}
	p.ws()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, p.errf("data after the JSON value")
	}
	return v, nil
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("%w: invalid JSON at byte %d: %s", ErrBadRequest, p.i, fmt.Sprintf(format, args...))
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value() (any, error) {
	if p.i >= len(p.b) {
		return nil, p.errf("unexpected end of input (truncated body?)")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.lit("true")
	case c == 'f':
		return false, p.lit("false")
	case c == 'n':
		return nil, p.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	default:
		return nil, p.errf("unexpected character %q", rune(c))
	}
}

func (p *parser) lit(s string) error {
	if !strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(s))]), s) {
		return p.errf("invalid literal")
	}
	p.i += len(s)
	return nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errf("nested deeper than %d", MaxDepth)
	}
	return nil
}

func (p *parser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.i++ // {
	m := map[string]any{}
	var folded map[string]struct{}
	base := len(p.keys)
	defer func() { p.keys = p.keys[:base]; p.depth-- }()
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.errf("expected a string key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%w: %w: key %q appears twice in one object", ErrBadRequest, ErrDuplicateKey, k)
		}
		// A short object is scanned; a long one gets a set, so that a
		// body of many keys costs linear time, not quadratic.
		f := fold(k)
		seen := false
		if folded != nil {
			_, seen = folded[f]
		} else {
			seen = slices.Contains(p.keys[base:], f)
		}
		if seen {
			return nil, fmt.Errorf("%w: %w: key %q differs from another key of its object only in case", ErrBadRequest, ErrDuplicateKey, k)
		}
		p.keys = append(p.keys, f)
		switch n := len(p.keys) - base; {
		case folded != nil:
			folded[f] = struct{}{}
		case n >= 16:
			folded = make(map[string]struct{}, 2*n)
			for _, k := range p.keys[base:] {
				folded[k] = struct{}{}
			}
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.errf("expected ':' after a key")
		}
		p.i++
		p.ws()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.errf("unexpected end of input in an object (truncated body?)")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, nil
		default:
			return nil, p.errf("expected ',' or '}' in an object")
		}
	}
}

func (p *parser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++ // [
	a := []any{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, nil
	}
	for {
		p.ws()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.errf("unexpected end of input in an array (truncated body?)")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return a, nil
		default:
			return nil, p.errf("expected ',' or ']' in an array")
		}
	}
}

func (p *parser) number() (any, error) {
	start := p.i
	if err := p.skipNumber(); err != nil {
		return nil, err
	}
	return json.Number(p.b[start:p.i]), nil
}

// skipNumber reads a number at p.i without building it.
func (p *parser) skipNumber() error {
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return p.errf("invalid number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return p.errf("invalid number: no digit after '.'")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return p.errf("invalid number: no digit in the exponent")
		}
	}
	return nil
}

func (p *parser) digits() int {
	n := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

// str reads a string at p.i (which is '"'): raw UTF-8 must be valid, a
// control character must be escaped, and \u escapes must pair surrogates.
func (p *parser) str() (string, error) {
	p.i++
	start := p.i
	// Fast path: find the closing quote, then check the run before it
	// holds no escape and no control character.
	end := bytes.IndexByte(p.b[p.i:], '"')
	if end < 0 {
		return "", p.errf("unexpected end of input in a string (truncated body?)")
	}
	s := p.b[p.i : p.i+end]
	if bytes.IndexByte(s, '\\') >= 0 {
		return p.slowStr(start)
	}
	ascii, control := scan(s)
	if control {
		return "", p.errf("a raw control character in a string")
	}
	if !ascii && !utf8.Valid(s) {
		return "", p.errf("a string is not valid UTF-8")
	}
	p.i += end + 1
	return intern(s), nil
}

// scan reports whether s is all ASCII and whether it holds a byte below
// 0x20, eight bytes at a time: a body's long strings are most of its bytes.
func scan(s []byte) (ascii, control bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	var high uint64
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(s[i:])
		high |= w
		// A byte below 0x20 borrows in w - 0x20 per byte while its high bit is clear.
		if (w-0x20*ones)&^w&highs != 0 {
			return false, true
		}
	}
	for ; i < len(s); i++ {
		high |= uint64(s[i])
		if s[i] < 0x20 {
			return false, true
		}
	}
	return high&highs == 0, false
}

// intern returns the protocol's common keys and values without
// allocating (a switch on string(b) does not copy).
func intern(b []byte) string {
	switch string(b) {
	case "jsonrpc":
		return "jsonrpc"
	case "2.0":
		return "2.0"
	case "id":
		return "id"
	case "method":
		return "method"
	case "params":
		return "params"
	case "name":
		return "name"
	case "arguments":
		return "arguments"
	case "uri":
		return "uri"
	case "_meta":
		return "_meta"
	case "tools/call":
		return "tools/call"
	case "message":
		return "message"
	}
	return string(b)
}

func (p *parser) slowStr(start int) (string, error) {
	var sb strings.Builder
	sb.Write(p.b[start:p.i])
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			s := sb.String()
			if !utf8.ValidString(s) {
				return "", p.errf("a string is not valid UTF-8")
			}
			return s, nil
		case c < 0x20:
			return "", p.errf("a raw control character in a string")
		case c != '\\':
			sb.WriteByte(c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			sb.WriteByte(e)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || p.i+1 >= len(p.b) || p.b[p.i] != '\\' || p.b[p.i+1] != 'u' {
					return "", p.errf("a lone UTF-16 surrogate in a \\u escape")
				}
				p.i += 2
				r2, err := p.hex4()
				if err != nil {
					return "", err
				}
				if r = utf16.DecodeRune(r, r2); r == unicode.ReplacementChar {
					return "", p.errf("a lone UTF-16 surrogate in a \\u escape")
				}
			}
			sb.WriteRune(r)
		default:
			return "", p.errf("invalid escape \\%c", e)
		}
	}
	return "", p.errf("unexpected end of input in a string (truncated body?)")
}

func (p *parser) hex4() (rune, error) {
	if p.i+4 > len(p.b) {
		return 0, p.errf("a truncated \\u escape")
	}
	v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, p.errf("an invalid \\u escape")
	}
	p.i += 4
	return rune(v), nil
}

// fold is a key's case-fold canonical form: each rune replaced by the
// smallest rune of its simple-folding orbit (ASCII letters in lower
// case), so that K, k and the Kelvin
// sign fold alike, as they do for strings.EqualFold and encoding/json.
func fold(k string) string {
	ascii := true
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			ascii = false
			break
		}
	}
	if ascii {
		return k
	}
	if isASCII(k) {
		// Each ASCII letter's orbit is itself and its other case (k and s
		// also hold the Kelvin sign and the long s, which fold to k and s).
		return strings.ToLower(k)
	}
	var sb strings.Builder
	for _, r := range k {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		if 'A' <= m && m <= 'Z' {
			m += 'a' - 'A' // so an ASCII key folds to itself in lower case, as the fast path above returns it
		}
		sb.WriteRune(m)
	}
	return sb.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
