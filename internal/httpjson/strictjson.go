package httpjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checkKeys reads data, one JSON value, alongside t, the type it will be
// decoded into, and returns a message naming the first key that is
// repeated within its object, or that is not exactly — case included — the
// name of a field of the struct that object decodes into. encoding/json
// matches field names ignoring case and keeps the last of repeated keys, so
// {"Action":"read:a"} or {"action":"read:a","action":"delete:a"} would be
// decided on one reading while a log, a proxy or another JSON library in
// front of MeshGuard reads another. It checks keys only: on malformed JSON
// it returns "" and leaves the decoder to say where the syntax breaks.
//
// It scans the bytes itself rather than through json.Decoder.Token, which
// allocates for every token and tripled the cost of decoding a /v1/check
// body (BenchmarkDecodeCheckBody).
func checkKeys(data []byte, t reflect.Type) string {
	s := keyScanner{data: data}
	msg, _ := s.value(t, nil, 0)
	return msg
}

// maxKeyDepth bounds the scan's recursion (encoding/json refuses nesting
// deeper than 10000 itself).
const maxKeyDepth = 1000

// maxSeenLinear: objects with at most this many keys are checked for
// repeats by a linear scan, larger ones with a map.
const maxSeenLinear = 16

// at is where a value is, for messages: built on the way down, rendered
// only when there is something to say.
type at struct {
	parent *at
	key    []byte
	index  int // when key is nil
}

func (a *at) String() string {
	if a == nil {
		return ""
	}
	p := a.parent.String()
	if a.key == nil {
		return p + "[" + strconv.Itoa(a.index) + "]"
	}
	if p == "" {
		return string(a.key)
	}
	return p + "." + string(a.key)
}

type keyScanner struct {
	data []byte
	pos  int
}

func (s *keyScanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value that decodes into t (nil: any keys). ok is false
// when the JSON is malformed.
func (s *keyScanner) value(t reflect.Type, where *at, depth int) (msg string, ok bool) {
	s.space()
	if s.pos >= len(s.data) {
		return "", false
	}
	switch s.data[s.pos] {
	case '{', '[':
		if depth >= maxKeyDepth {
			return fmt.Sprintf("nested too deeply: at most %d levels of objects and lists", maxKeyDepth), true
		}
		t = keyed(t)
		if s.data[s.pos] == '[' {
			return s.array(t, where, depth)
		}
		return s.object(t, where, depth)
	case '"':
		_, ok := s.str()
		return "", ok
	}
	// A number, true, false or null: up to the next delimiter.
	start := s.pos
	for s.pos < len(s.data) && strings.IndexByte(",]} \t\r\n", s.data[s.pos]) < 0 {
		s.pos++
	}
	return "", s.pos > start
}

// keyed is the type whose keys an object decoding into t must match: t
// without pointers, or nil for a type that decodes itself.
func keyed(t reflect.Type) reflect.Type {
	if t == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if pt := reflect.PointerTo(t); pt.Implements(reflect.TypeFor[json.Unmarshaler]()) ||
		pt.Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return nil
	}
	return t
}

func (s *keyScanner) array(t reflect.Type, where *at, depth int) (string, bool) {
	s.pos++ // [
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return "", true
	}
	for i := 0; ; i++ {
		if msg, ok := s.value(elem, &at{parent: where, index: i}, depth+1); msg != "" || !ok {
			return msg, ok
		}
		s.space()
		if s.pos >= len(s.data) {
			return "", false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return "", true
		default:
			return "", false
		}
	}
}

func (s *keyScanner) object(t reflect.Type, where *at, depth int) (string, bool) {
	s.pos++ // {
	isStruct := t != nil && t.Kind() == reflect.Struct
	var (
		seenBuf [maxSeenLinear + 1][]byte
		seen    = seenBuf[:0]
		seenMap map[string]bool
	)
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return "", true
	}
	for {
		s.space()
		raw, ok := s.str()
		if !ok {
			return "", false
		}
		key := raw
		if bytes.IndexByte(raw, '\\') >= 0 {
			var k string
			if json.Unmarshal(s.data[s.pos-len(raw)-2:s.pos], &k) != nil {
				return "", false
			}
			key = []byte(k)
		}
		if !utf8.Valid(key) {
			// encoding/json would read every invalid byte as U+FFFD, so
			// two different keys could become one.
			return fmt.Sprintf("key %q in %q is not valid UTF-8", key, (&at{parent: where, key: []byte("…")}).String()), true
		}
		repeated := false
		if seenMap != nil {
			repeated = seenMap[string(key)]
			seenMap[string(key)] = true
		} else {
			for _, k := range seen {
				if bytes.Equal(k, key) {
					repeated = true
					break
				}
			}
			if seen = append(seen, key); len(seen) > maxSeenLinear {
				seenMap = make(map[string]bool, 2*len(seen))
				for _, k := range seen {
					seenMap[string(k)] = true
				}
			}
		}
		here := &at{parent: where, key: key}
		if repeated {
			return fmt.Sprintf("duplicate key %q: each key may appear once", here), true
		}
		var vt reflect.Type
		switch {
		case isStruct:
			ft, _, ok := fieldType(t, key, false)
			if !ok {
				return unknownField(here.String(), string(key), t), true
			}
			vt = ft
		case t != nil && t.Kind() == reflect.Map:
			vt = t.Elem()
		}
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return "", false
		}
		s.pos++
		if msg, ok := s.value(vt, here, depth+1); msg != "" || !ok {
			return msg, ok
		}
		s.space()
		if s.pos >= len(s.data) {
			return "", false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return "", true
		default:
			return "", false
		}
	}
}

// str scans a string and returns its bytes between the quotes, escapes
// as they are.
func (s *keyScanner) str() ([]byte, bool) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch s.data[i] {
		case '\\':
			i++ // the escaped byte cannot end the string
		case '"':
			s.pos = i + 1
			return s.data[start:i], true
		}
	}
	return nil, false
}

// unknownField says that key is no field of t, and which field it nearly
// is.
func unknownField(name, key string, t reflect.Type) string {
	if _, near, ok := fieldType(t, []byte(key), true); ok {
		return fmt.Sprintf("unknown field %q (field names are case-sensitive: did you mean %q?)", name, near)
	}
	return fmt.Sprintf("unknown field %q", name)
}

// fieldType returns the type and name of struct t's field whose JSON name
// is key — exactly, or ignoring case if fold — as encoding/json names
// fields (tag name, else the Go name; embedded structs flattened; "-"
// skipped). Request types have a few fields: a scan costs less than
// building a map.
func fieldType(t reflect.Type, key []byte, fold bool) (reflect.Type, string, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if vt, n, ok := fieldType(ft, key, fold); ok {
					return vt, n, true
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == string(key) || (fold && strings.EqualFold(name, string(key))) {
			return f.Type, name, true
		}
	}
	return nil, "", false
}
