package agentproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// The decision's path reads the body in one validating pass that builds
// no values: every check of the strict reader (json.go) is made in place —
// keys compared as spans, strings checked without copying — and only the
// members of the few objects a Call needs (the request, its params, an A2A
// message) are kept, as spans. Arguments stay raw bytes, decoded by the
// strict reader only when asked (Call.Arguments), since most rules read
// none.

// member is one key of an object and its value's bytes, as sent.
type member struct {
	// key is the decoded key when it was escaped; raw otherwise.
	key string
	raw []byte
	val []byte
}

// name is the key, for an error message.
func (m member) name() string {
	if m.raw != nil {
		return string(m.raw)
	}
	return m.key
}

func (m member) is(k string) bool {
	if m.raw != nil {
		return string(m.raw) == k
	}
	return m.key == k
}

// seenKey is a key of an object being read, for the duplicate checks: its
// decoded bytes and its case-fold, at [f0, f1) of the parser's fold buffer.
type seenKey struct {
	k      []byte
	f0, f1 int
}

// scanner is the validating pass; its stacks are reused across objects.
type scanner struct {
	parser
	seen  []seenKey
	folds []byte
	// params, message and args are the members of the request's params
	// object, of params.message and of params.arguments, kept as the pass
	// meets them.
	params, message, args []member
	// Backing arrays, so that a common body's stacks need no allocation
	// of their own.
	seenBuf  [16]seenKey
	foldBuf  [256]byte
	paramBuf [8]member
	// argBuf backs args: the Call keeps them (Call.Argument), and with
	// them this scanner, which no other parse reuses.
	argBuf [8]member
	topBuf [4]member
}

// newScanner returns a scanner over b.
func newScanner(b []byte) *scanner {
	s := &scanner{parser: parser{b: b}}
	s.seen, s.folds, s.params, s.args = s.seenBuf[:0], s.foldBuf[:0], s.paramBuf[:0], s.argBuf[:0]
	return s
}

// What object keeps of an object's members.
const (
	keepNone = iota
	keepTop
	keepParams
	keepMessage
	keepArguments
)

// topMembers validates all of the body as one JSON value and returns the
// members of its top-level object, and the value's first byte, which
// tells an object from an array or anything else.
func (s *scanner) topMembers() (ms []member, kind byte, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return nil, 0, s.errf("unexpected end of input (truncated body?)")
	}
	kind = s.b[s.i]
	if kind == '{' {
		ms, err = s.object(s.topBuf[:0], keepTop)
	} else {
		err = s.skip()
	}
	if err != nil {
		return nil, kind, err
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, kind, s.errf("data after the JSON value")
	}
	return ms, kind, nil
}

// skip validates the value at s.i without building it.
func (s *scanner) skip() error {
	if s.i >= len(s.b) {
		return s.errf("unexpected end of input (truncated body?)")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		_, err := s.object(nil, keepNone)
		return err
	case c == '[':
		return s.skipArray()
	case c == '"':
		_, _, err := s.strSpan()
		return err
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.skipNumber()
	default:
		return s.errf("unexpected character %q", rune(c))
	}
}

func (s *scanner) skipArray() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	s.i++ // [
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if err := s.skip(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.errf("unexpected end of input in an array (truncated body?)")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.errf("expected ',' or ']' in an array")
		}
	}
}

// strSpan reads a string at s.i: raw is its bytes when it holds no escape
// (no copy), else decoded is its value. The checks are str's, made in one
// pass over the bytes, eight at a time.
func (s *scanner) strSpan() (raw []byte, decoded string, err error) {
	start := s.i + 1
	s.i = start
	end, stop, ascii := stringStop(s.b[start:])
	switch {
	case stop == '\\':
		d, err := s.slowStr(start)
		return nil, d, err
	case stop == 0 && end == len(s.b)-start:
		return nil, "", s.errf("unexpected end of input in a string (truncated body?)")
	case stop != '"':
		return nil, "", s.errf("a raw control character in a string")
	}
	r := s.b[start : start+end : start+end]
	if !ascii && !utf8.Valid(r) {
		return nil, "", s.errf("a string is not valid UTF-8")
	}
	s.i += end + 1
	return r, "", nil
}

// stringStop finds the first byte of b that ends a string's fast path — a
// quote, a backslash or a control character — and reports whether the
// bytes before it are all ASCII. stop is 0 and end len(b) if there is none.
func stringStop(b []byte) (end int, stop byte, ascii bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	var high uint64
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q, bs := w^('"'*ones), w^('\\'*ones)
		// A flagged byte: zero in q or bs, or below 0x20 in w. The lowest
		// flag is exact (a borrow only runs upward).
		m := ((q-ones)&^q | (bs-ones)&^bs | (w-0x20*ones)&^w) & highs
		if m != 0 {
			k := bits.TrailingZeros64(m) / 8
			high |= w & (1<<(8*k) - 1)
			return i + k, b[i+k], high&highs == 0
		}
		high |= w
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i, c, high&highs == 0
		}
		high |= uint64(b[i])
	}
	return len(b), 0, high&highs == 0
}

// object validates the object at s.i; at a kept level it returns its
// members appended to ms, and keeps params (and params.message) members.
func (s *scanner) object(ms []member, keep int) ([]member, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	s.i++ // {
	var folded map[string]struct{}
	base, fbase := len(s.seen), len(s.folds)
	defer s.leave(base, fbase)
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return ms, nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return nil, s.errf("expected a string key")
		}
		raw, dec, err := s.strSpan()
		if err != nil {
			return nil, err
		}
		k := raw
		if k == nil {
			k = []byte(dec)
		}
		f0 := len(s.folds)
		s.folds = appendFold(s.folds, k)
		f := s.folds[f0:]
		dup := -1
		if folded != nil {
			if _, ok := folded[string(f)]; ok {
				dup = 0
			}
		} else {
			for j := base; j < len(s.seen); j++ {
				if string(s.folds[s.seen[j].f0:s.seen[j].f1]) == string(f) {
					dup = j
					break
				}
			}
		}
		if dup >= 0 {
			if folded == nil && !bytes.Equal(s.seen[dup].k, k) {
				return nil, fmt.Errorf("%w: %w: key %q differs from another key of its object only in case", ErrBadRequest, ErrDuplicateKey, k)
			}
			if folded != nil && !s.exactSeen(base, k) {
				return nil, fmt.Errorf("%w: %w: key %q differs from another key of its object only in case", ErrBadRequest, ErrDuplicateKey, k)
			}
			return nil, fmt.Errorf("%w: %w: key %q appears twice in one object", ErrBadRequest, ErrDuplicateKey, k)
		}
		s.seen = append(s.seen, seenKey{k: k, f0: f0, f1: len(s.folds)})
		// A short object is scanned; a long one gets a set, so that a
		// body of many keys costs linear time, not quadratic.
		switch n := len(s.seen) - base; {
		case folded != nil:
			folded[string(f)] = struct{}{}
		case n >= 16:
			folded = make(map[string]struct{}, 2*n)
			for _, sk := range s.seen[base:] {
				folded[string(s.folds[sk.f0:sk.f1])] = struct{}{}
			}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, s.errf("expected ':' after a key")
		}
		s.i++
		s.ws()
		v0 := s.i
		switch {
		case keep == keepTop && s.i < len(s.b) && s.b[s.i] == '{' && string(k) == "params":
			s.params, err = s.object(s.params[:0], keepParams)
		case keep == keepParams && s.i < len(s.b) && s.b[s.i] == '{' && string(k) == "message":
			s.message, err = s.object(s.message[:0], keepMessage)
		case keep == keepParams && s.i < len(s.b) && s.b[s.i] == '{' && string(k) == "arguments":
			s.args, err = s.object(s.args[:0], keepArguments)
		default:
			err = s.skip()
		}
		if err != nil {
			return nil, err
		}
		if keep != keepNone {
			ms = append(ms, member{key: dec, raw: raw, val: s.b[v0:s.i]})
		}
		s.ws()
		if s.i >= len(s.b) {
			return nil, s.errf("unexpected end of input in an object (truncated body?)")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return ms, nil
		default:
			return nil, s.errf("expected ',' or '}' in an object")
		}
	}
}

func (s *scanner) leave(base, fbase int) {
	s.seen, s.folds = s.seen[:base], s.folds[:fbase]
	s.depth--
}

// exactSeen: k is byte for byte a key already seen in the object at base
// (only asked once a duplicate of its fold is found).
func (s *scanner) exactSeen(base int, k []byte) bool {
	for _, sk := range s.seen[base:] {
		if bytes.Equal(sk.k, k) {
			return true
		}
	}
	return false
}

// appendFold appends k's case-fold (fold's) to dst, without allocating for
// an ASCII key.
func appendFold(dst, k []byte) []byte {
	for _, c := range k {
		if c >= utf8.RuneSelf {
			return append(dst, fold(string(k))...)
		}
	}
	for _, c := range k {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// lookup finds key among ms (keys are unique: duplicates were refused).
func lookup(ms []member, key string) ([]byte, bool) {
	for _, m := range ms {
		if m.is(key) {
			return m.val, true
		}
	}
	return nil, false
}

// stringValue reads a validated JSON value as a string, if it is one.
func stringValue(v []byte) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	p := parser{b: v}
	s, err := p.str()
	if err != nil {
		return "", false // cannot happen: v was validated
	}
	return s, true
}
