package store

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The JSON reader under the record decoder (auditdecode.go): the
// primitives a stored record's canonical JSON is made of, each reporting
// false for anything it does not take exactly as encoding/json would, so
// the caller falls back to encoding/json.

// jsonParser reads canonical JSON (no whitespace) from s at i.
type jsonParser struct {
	s     string
	i     int
	depth int
}

// maxDecodeDepth bounds the nesting the hand decoder follows (deeper
// context values go to encoding/json, which has its own bound).
const maxDecodeDepth = 64

func (p *jsonParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads an object, calling member with each key once p is past
// its ':' (member reads the value); false if member refuses or the
// object is malformed.
func (p *jsonParser) object(member func(key string) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	for {
		key, ok := p.str()
		if !ok || !p.eat(':') || !member(key) {
			return false
		}
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// once marks field bit in *seen; false if it was already there (a key
// twice: json.Unmarshal merges, which is left to it).
func once(seen *uint64, bit uint) bool {
	if *seen&(1<<bit) != 0 {
		return false
	}
	*seen |= 1 << bit
	return true
}

// str reads a string. A plain one (printable ASCII or valid UTF-8, no
// escape) is a slice of s; any other goes through encoding/json.
func (p *jsonParser) str() (string, bool) {
	s := p.s
	if p.i >= len(s) || s[p.i] != '"' {
		return "", false
	}
	start := p.i + 1
	plain, ascii := true, true
	j := start
	for ; j < len(s); j++ {
		c := s[j]
		if c == '"' {
			break
		}
		switch {
		case c == '\\':
			plain = false
			j++ // past the escaped byte
		case c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	if j >= len(s) {
		return "", false
	}
	p.i = j + 1
	if plain && (ascii || utf8.ValidString(s[start:j])) {
		return s[start:j], true
	}
	var out string
	if json.Unmarshal([]byte(s[start-1:j+1]), &out) != nil {
		return "", false
	}
	return out, true
}

func (p *jsonParser) boolean() (bool, bool) {
	switch {
	case len(p.s)-p.i >= 4 && p.s[p.i:p.i+4] == "true":
		p.i += 4
		return true, true
	case len(p.s)-p.i >= 5 && p.s[p.i:p.i+5] == "false":
		p.i += 5
		return false, true
	}
	return false, false
}

// integer reads a JSON integer (no fraction, no exponent) that fits an
// int64; json.Unmarshal refuses the others into an integer field.
func (p *jsonParser) integer() (int64, bool) {
	start := p.i
	p.eat('-')
	digits := p.i
	for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == digits || (p.s[digits] == '0' && p.i-digits > 1) {
		return 0, false
	}
	n, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
	return n, err == nil
}

// number reads a JSON number as json.Unmarshal does into an any.
func (p *jsonParser) number() (float64, bool) {
	s, start := p.s, p.i
	p.eat('-')
	digits := p.i
	for p.i < len(s) && '0' <= s[p.i] && s[p.i] <= '9' {
		p.i++
	}
	if p.i == digits || (s[digits] == '0' && p.i-digits > 1) {
		return 0, false
	}
	if p.eat('.') {
		d := p.i
		for p.i < len(s) && '0' <= s[p.i] && s[p.i] <= '9' {
			p.i++
		}
		if p.i == d {
			return 0, false
		}
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		d := p.i
		for p.i < len(s) && '0' <= s[p.i] && s[p.i] <= '9' {
			p.i++
		}
		if p.i == d {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s[start:p.i], 64)
	return f, err == nil
}

// value reads any JSON value as json.Unmarshal does into an any: float64,
// string, bool, nil, []any, map[string]any (a key twice: the last wins,
// as there). With build false it only checks the value.
func (p *jsonParser) value(build bool) (any, bool) {
	if p.i >= len(p.s) {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '"':
		s, ok := p.str()
		if !ok || !build {
			return nil, ok
		}
		return s, true
	case c == '{':
		if p.depth++; p.depth > maxDecodeDepth {
			return nil, false
		}
		var m map[string]any
		if build {
			m = map[string]any{}
		}
		if !p.object(func(key string) bool {
			v, ok := p.value(build)
			if ok && build {
				m[key] = v
			}
			return ok
		}) {
			return nil, false
		}
		p.depth--
		if !build {
			return nil, true
		}
		return m, true
	case c == '[':
		if p.depth++; p.depth > maxDecodeDepth {
			return nil, false
		}
		p.i++
		var a []any
		if build {
			a = []any{}
		}
		if !p.eat(']') {
			for {
				v, ok := p.value(build)
				if !ok {
					return nil, false
				}
				if build {
					a = append(a, v)
				}
				if p.eat(']') {
					break
				}
				if !p.eat(',') {
					return nil, false
				}
			}
		}
		p.depth--
		if !build {
			return nil, true
		}
		return a, true
	case c == 't' || c == 'f':
		b, ok := p.boolean()
		if !ok || !build {
			return nil, ok
		}
		return b, true
	case c == 'n':
		if len(p.s)-p.i >= 4 && p.s[p.i:p.i+4] == "null" {
			p.i += 4
			return nil, true
		}
		return nil, false
	case c == '-' || '0' <= c && c <= '9':
		f, ok := p.number()
		if !ok || !build {
			return nil, ok
		}
		return f, true
	}
	return nil, false
}

// strs reads an array of strings (never null: left to encoding/json).
func (p *jsonParser) strs() ([]string, bool) {
	if !p.eat('[') {
		return nil, false
	}
	out := []string{}
	if p.eat(']') {
		return out, true
	}
	for {
		s, ok := p.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if p.eat(']') {
			return out, true
		}
		if !p.eat(',') {
			return nil, false
		}
	}
}
