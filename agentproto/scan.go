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
	f0, f1 int32
}

// scanner is the validating pass. A parse declares it as a local (var s
// scanner; s.reset(b)) and nothing it returns points into it; and it holds
// no pointer to itself (its stacks are fixed arrays and counts, spilling
// to the heap only past them), which is what lets the compiler keep it on
// the parse's stack: no allocation, and nothing to release or to use after
// a release.
type scanner struct {
	parser
	// seen are the keys of the objects open on the path, and folds
	// their case-folds.
	seen  spill16[seenKey]
	folds spill256[byte]
	// top, params and message are the members of the request object, of
	// its params object and of params.message, kept as the pass meets
	// them.
	top, params, message spill8[member]
	// args indexes params.arguments' members, by offset: the Call keeps
	// it (a copy, not a pointer into the scanner) for Argument.
	args argIndex
}

// reset readies s for a pass over b.
func (s *scanner) reset(b []byte) {
	*s = scanner{parser: parser{b: b}}
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
		err = s.object(&s.top, keepTop)
		ms = s.top.all()
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
		return s.object(nil, keepNone)
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
//
// A string longer than a word or two (a body's long argument, most of its
// bytes) is first tried the quick way: the closing quote and any backslash
// found by bytes.IndexByte (vectorised), then one branch-free pass for
// control and non-ASCII bytes. Whatever that way finds unusual is read
// again by stopWords, so both ways answer alike.
func stringStop(b []byte) (end int, stop byte, ascii bool) {
	const head = 16
	if len(b) <= head {
		return stopWords(b)
	}
	if end, stop, ascii = stopWords(b[:head]); end < head {
		return end, stop, ascii
	}
	q := bytes.IndexByte(b[head:], '"')
	if q < 0 {
		return stopWords(b)
	}
	run := b[head : head+q]
	if bytes.IndexByte(run, '\\') >= 0 {
		return stopWords(b)
	}
	plainASCII, plain := plainRun(run)
	if !plain {
		return stopWords(b)
	}
	return head + q, '"', ascii && plainASCII
}

// plainRun reports whether run holds no control character, and whether
// it is all ASCII, in one pass without branches on its bytes.
func plainRun(run []byte) (ascii, plain bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	var ctl, high uint64
	i := 0
	for ; i+16 <= len(run); i += 16 {
		w := binary.LittleEndian.Uint64(run[i:])
		v := binary.LittleEndian.Uint64(run[i+8:])
		// A byte below 0x20 borrows in w - 0x20 per byte while its high
		// bit is clear; a borrow only runs on from such a byte.
		ctl |= (w-0x20*ones)&^w | (v-0x20*ones)&^v
		high |= w | v
	}
	for ; i < len(run); i++ {
		c := uint64(run[i])
		ctl |= (c - 0x20) &^ c
		high |= c
	}
	return high&highs == 0, ctl&highs == 0
}

// stopWords is stringStop read eight bytes at a time.
func stopWords(b []byte) (end int, stop byte, ascii bool) {
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

// object validates the object at s.i; at a kept level it pushes its
// members onto ms (which is in s), and keeps params (and params.message)
// members and params.arguments' index.
func (s *scanner) object(ms *spill8[member], keep int) error {
	if err := s.enter(); err != nil {
		return err
	}
	o0 := s.i
	s.i++ // {
	if keep == keepArguments {
		s.args = argIndex{ok: true}
	}
	var folded map[string]struct{}
	base, fbase := s.seen.n, s.folds.n
	defer s.leave(base, fbase)
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.errf("expected a string key")
		}
		k0 := s.i + 1
		raw, dec, err := s.strSpan()
		if err != nil {
			return err
		}
		k := raw
		if k == nil {
			k = []byte(dec)
		}
		f0 := s.folds.n
		appendFold(&s.folds, k)
		folds, seen := s.folds.all(), s.seen.all()
		f := folds[f0:]
		dup := -1
		if folded != nil {
			if _, ok := folded[string(f)]; ok {
				dup = 0
			}
		} else {
			for j := base; j < len(seen); j++ {
				if string(folds[seen[j].f0:seen[j].f1]) == string(f) {
					dup = j
					break
				}
			}
		}
		if dup >= 0 {
			if folded == nil && !bytes.Equal(seen[dup].k, k) {
				return fmt.Errorf("%w: %w: key %q differs from another key of its object only in case", ErrBadRequest, ErrDuplicateKey, k)
			}
			if folded != nil && !s.exactSeen(base, k) {
				return fmt.Errorf("%w: %w: key %q differs from another key of its object only in case", ErrBadRequest, ErrDuplicateKey, k)
			}
			return fmt.Errorf("%w: %w: key %q appears twice in one object", ErrBadRequest, ErrDuplicateKey, k)
		}
		s.seen.push(seenKey{k: k, f0: int32(f0), f1: int32(s.folds.n)})
		// A short object is scanned; a long one gets a set, so that a
		// body of many keys costs linear time, not quadratic.
		switch n := s.seen.n - base; {
		case folded != nil:
			folded[string(f)] = struct{}{}
		case n >= 16:
			folded = make(map[string]struct{}, 2*n)
			folds := s.folds.all()
			for _, sk := range s.seen.all()[base:] {
				folded[string(folds[sk.f0:sk.f1])] = struct{}{}
			}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.errf("expected ':' after a key")
		}
		s.i++
		s.ws()
		v0 := s.i
		switch {
		case keep == keepTop && s.i < len(s.b) && s.b[s.i] == '{' && string(k) == "params":
			s.params.truncate(0)
			err = s.object(&s.params, keepParams)
		case keep == keepParams && s.i < len(s.b) && s.b[s.i] == '{' && string(k) == "message":
			s.message.truncate(0)
			err = s.object(&s.message, keepMessage)
		case keep == keepParams && s.i < len(s.b) && s.b[s.i] == '{' && string(k) == "arguments":
			err = s.object(nil, keepArguments)
			s.args.size = uint32(s.i - v0)
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
		switch keep {
		case keepNone:
		case keepArguments:
			s.indexArg(o0, k0, raw, v0)
		default:
			ms.push(member{key: dec, raw: raw, val: s.b[v0:s.i]})
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.errf("unexpected end of input in an object (truncated body?)")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.errf("expected ',' or '}' in an object")
		}
	}
}

func (s *scanner) leave(base, fbase int) {
	s.seen.truncate(base)
	s.folds.truncate(fbase)
	s.depth--
}

// exactSeen: k is byte for byte a key already seen in the object at base
// (only asked once a duplicate of its fold is found).
func (s *scanner) exactSeen(base int, k []byte) bool {
	for _, sk := range s.seen.all()[base:] {
		if bytes.Equal(sk.k, k) {
			return true
		}
	}
	return false
}

// appendFold pushes k's case-fold (fold's) onto dst, without allocating
// for an ASCII key.
func appendFold(dst *spill256[byte], k []byte) {
	for _, c := range k {
		if c >= utf8.RuneSelf {
			for _, c := range []byte(fold(string(k))) {
				dst.push(c)
			}
			return
		}
	}
	if dst.more == nil && dst.n+len(k) <= len(dst.arr) {
		// The common case, in place: no push per byte.
		out := dst.arr[dst.n : dst.n+len(k)]
		for i, c := range k {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			out[i] = c
		}
		dst.n += len(k)
		return
	}
	for _, c := range k {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst.push(c)
	}
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
