package identity

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// repeatedMember returns the first member name that appears twice in one
// object of the JSON value raw, at any depth ("" and false if none, or if
// raw is not JSON: the decoder reports that). RFC 7515 §4 and RFC 7519 §4
// let a JWS parser refuse repeated header parameters and claims, or keep
// the last; encoding/json keeps the last, while other JWT libraries (an
// Envoy jwt_authn in front of MeshGuard, an upstream reading the same
// token) may keep the first, and would act on an identity MeshGuard never
// decided on. So they are refused.
//
// It scans the bytes rather than json.Decoder's tokens, which allocate for
// each one: this runs on every verification the cache misses.
func repeatedMember(raw []byte) (string, bool) {
	s := memberScan{data: raw}
	name, found, _ := s.value(0)
	return name, found
}

// maxMemberDepth bounds the scan's recursion; MeshGuard's own tokens nest
// act claims MaxActors deep.
const maxMemberDepth = 64

type memberScan struct {
	data []byte
	pos  int
	ok   bool // set by next
}

func (s *memberScan) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value; ok is false when the JSON is malformed.
func (s *memberScan) value(depth int) (name string, found, ok bool) {
	s.space()
	if s.pos >= len(s.data) || depth > maxMemberDepth {
		return "", false, false
	}
	switch s.data[s.pos] {
	case '{':
		return s.object(depth)
	case '[':
		s.pos++
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == ']' {
			s.pos++
			return "", false, true
		}
		for {
			if name, found, ok := s.value(depth + 1); found || !ok {
				return name, found, ok
			}
			if !s.next(']') {
				return "", false, s.ok
			}
		}
	case '"':
		_, ok := s.str()
		return "", false, ok
	}
	start := s.pos // a number, true, false or null
	for s.pos < len(s.data) && bytes.IndexByte([]byte(",]} \t\r\n"), s.data[s.pos]) < 0 {
		s.pos++
	}
	return "", false, s.pos > start
}

func (s *memberScan) object(depth int) (string, bool, bool) {
	s.pos++ // {
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return "", false, true
	}
	var (
		seenBuf [16][]byte
		seen    = seenBuf[:0]
		seenMap map[string]bool
	)
	for {
		s.space()
		key, ok := s.str()
		if !ok {
			return "", false, false
		}
		// Read escapes, and invalid UTF-8 (each bad byte is U+FFFD), as
		// encoding/json reads them: two spellings may be one key.
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
			var k string
			if json.Unmarshal(s.data[s.pos-len(key)-2:s.pos], &k) != nil {
				return "", false, false
			}
			key = []byte(k)
		}
		if seenMap != nil {
			if seenMap[string(key)] {
				return string(key), true, true
			}
			seenMap[string(key)] = true
		} else {
			for _, k := range seen {
				if bytes.Equal(k, key) {
					return string(key), true, true
				}
			}
			// Beyond a few keys, a map: no quadratic scan of a large object.
			if seen = append(seen, key); len(seen) == len(seenBuf) {
				seenMap = make(map[string]bool, 2*len(seen))
				for _, k := range seen {
					seenMap[string(k)] = true
				}
			}
		}
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return "", false, false
		}
		s.pos++
		if name, found, ok := s.value(depth + 1); found || !ok {
			return name, found, ok
		}
		if !s.next('}') {
			return "", false, s.ok
		}
	}
}

// next reads a ',' (true: another element follows) or end (false, and
// s.ok says whether it was there).
func (s *memberScan) next(end byte) bool {
	s.space()
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == ',':
		s.pos++
		return true
	case s.pos < len(s.data) && s.data[s.pos] == end:
		s.pos++
		s.ok = true
		return false
	}
	s.ok = false
	return false
}

// str scans a string and returns its bytes between the quotes, escapes
// as they are.
func (s *memberScan) str() ([]byte, bool) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch s.data[i] {
		case '\\':
			i++
		case '"':
			s.pos = i + 1
			return s.data[start:i], true
		}
	}
	return nil, false
}
