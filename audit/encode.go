package audit

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// appendCanonical appends the encoding a record's hash covers: a JSON
// object with every field but the two hashes, in declaration order, the
// time in UTC with nanoseconds, context keys sorted. It is written by hand
// because it runs once per decision on the Check path, where
// encoding/json's reflection cost several microseconds.
//
// The encoding must be stable under a round trip through storage: decoding
// it with encoding/json and encoding again gives the same bytes. That is
// why an empty chain is written as [] (nil and empty decode alike) and
// invalid UTF-8 becomes U+FFFD written raw (as the decoder would return it).
func appendCanonical(b []byte, r *Record) ([]byte, error) {
	b = appendMiddle(appendHead(b, r), r)
	return appendTail(appendLatency(b, r), r)
}

// The canonical encoding in four parts, in order: appendHead and
// appendLatency write what differs between the records a decision cache
// reissues (engine.Reissue: the ids, the time, the trace and span, the
// latency), appendMiddle and appendTail the rest, which RunEncoder copies
// from the record before when it is the same.

// appendHead appends the opening brace and the id, timestamp, traceId,
// spanId and decisionId members.
func appendHead(b []byte, r *Record) []byte {
	b = append(b, '{')
	b = appendString(append(b, `"id":`...), r.ID)
	b = append(b, `,"timestamp":"`...)
	b = appendTime(b, r.Timestamp)
	b = append(b, '"')
	b = appendString(append(b, `,"traceId":`...), r.TraceID)
	b = appendString(append(b, `,"spanId":`...), r.SpanID)
	return appendString(append(b, `,"decisionId":`...), r.DecisionID)
}

// appendMiddle appends the members from agentId to policyRevision.
func appendMiddle(b []byte, r *Record) []byte {
	b = appendString(append(b, `,"agentId":`...), r.AgentID)
	b = appendString(append(b, `,"agentName":`...), r.AgentName)
	b = appendString(append(b, `,"trustTier":`...), r.TrustTier)
	b = appendString(append(b, `,"action":`...), r.Action)
	b = appendString(append(b, `,"resource":`...), r.Resource)
	b = appendString(append(b, `,"method":`...), r.Method)
	b = appendString(append(b, `,"path":`...), r.Path)
	b = appendString(append(b, `,"host":`...), r.Host)
	b = appendString(append(b, `,"decision":`...), r.Decision)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = appendString(append(b, `,"reason":`...), r.Reason)
	b = appendString(append(b, `,"policy":`...), r.Policy)
	b = appendString(append(b, `,"rule":`...), r.Rule)
	b = append(b, `,"chain":[`...)
	for i, id := range r.Chain {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, id)
	}
	b = append(b, `],"delegationDepth":`...)
	b = strconv.AppendInt(b, int64(r.DelegationDepth), 10)
	b = appendString(append(b, `,"source":`...), r.Source)
	b = appendString(append(b, `,"sourceAddress":`...), r.SourceAddress)
	return appendString(append(b, `,"policyRevision":`...), r.PolicyRevision)
}

// appendLatency appends the latencyUs member.
func appendLatency(b []byte, r *Record) []byte {
	return strconv.AppendInt(append(b, `,"latencyUs":`...), r.LatencyUs, 10)
}

// appendTail appends the members from context on and the closing brace.
func appendTail(b []byte, r *Record) ([]byte, error) {
	if r.Context != nil {
		b = append(b, `,"context":`...)
		var err error
		if b, err = appendValue(b, r.Context); err != nil {
			return nil, fmt.Errorf("audit: encoding context of record %s: %w", r.ID, err)
		}
	}
	b = appendString(append(b, `,"mode":`...), r.Mode)
	if r.Proxy != "" {
		// Only when set, so the records sealed before it existed keep
		// their hashes.
		b = appendString(append(b, `,"proxy":`...), r.Proxy)
	}
	if c := r.Call; c != nil {
		// Only when set, as proxy: a record of any other request encodes
		// as before.
		if c.Arguments != nil && !json.Valid(c.Arguments) {
			return nil, fmt.Errorf("audit: record %s: %w: its recorded arguments are not JSON", r.ID, ErrBadArguments)
		}
		b = append(b, `,"call":{`...)
		b = append(appendCall(b, c), '}')
	}
	if r.Inputs != nil {
		// Only when set, as call: older records keep their hashes.
		b = append(b, `,"inputs":`...)
		b = appendInputs(b, r.Inputs)
	}
	if a := r.Approval; a != nil {
		// Only when set, as call.
		b = append(b, `,"approval":{`...)
		b = appendString(append(b, `"id":`...), a.ID)
		b = append(appendField(b, "outcome", a.Outcome, false), '}')
	}
	if sh := r.Shadow; sh != nil {
		// Only when set, as call.
		b = append(b, `,"shadow":{`...)
		b = appendString(append(b, `"decision":`...), sh.Decision)
		b = appendString(append(b, `,"reason":`...), sh.Reason)
		b = appendString(append(b, `,"policy":`...), sh.Policy)
		b = append(appendField(b, "rule", sh.Rule, false), '}')
	}
	return append(b, '}'), nil
}

// appendValue appends a decoded JSON value with object keys sorted. Strings
// go through appendString (encoding/json would escape invalid UTF-8 as
// \ufffd, which decodes to a rune it then writes raw: not stable); other
// scalars through encoding/json, whose number forms survive its round trip.
func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return appendString(b, v), nil
	case map[string]any:
		// Members gathered on the stack for a usual context (a few header
		// or query values): slices.Sorted(maps.Keys) allocated an iterator
		// and a slice per map, a third of encoding a plain request's
		// record. Keys and values are taken together: looking each value
		// up again by its key was a quarter of what remained.
		var room [16]member
		ms := room[:0]
		for k, e := range v {
			ms = append(ms, member{k, e})
		}
		if len(ms) > 1 {
			slices.SortFunc(ms, func(x, y member) int { return strings.Compare(x.k, y.k) })
		}
		b = append(b, '{')
		for i := range ms {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, ms[i].k)
			b = append(b, ':')
			var err error
			if b, err = appendValue(b, ms[i].v); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return append(b, j...), nil
	}
}

// member is a JSON object's member, for sorting by key.
type member struct {
	k string
	v any
}

func appendField(b []byte, name, value string, first bool) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return appendString(b, value)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Control characters, quote and
// backslash are escaped; everything else, including <, > and &, is
// written as is (the output is hashed and stored, never put in HTML).
func appendString(b []byte, s string) []byte {
	// Most strings of a record (ids, hashes, names) need no escape: they
	// are found so eight bytes at a time, the last word overlapping the
	// one before, and copied at once. The byte loop was a tenth of an
	// audited Check, then the word loop with its tail byte by byte half
	// of encoding a record.
	i := 0
	for i+8 <= len(s) && plain8(word(s, i)) {
		i += 8
	}
	switch {
	case i == len(s):
	case len(s) < 8:
		for i < len(s) && s[i] >= 0x20 && s[i] < utf8.RuneSelf && s[i] != '"' && s[i] != '\\' {
			i++
		}
	case i+8 > len(s) && plain8(word(s, len(s)-8)):
		i = len(s)
	}
	b = append(b, '"')
	if i < len(s) {
		return appendEscaped(b, s, i)
	}
	b = append(b, s...)
	return append(b, '"')
}

// appendEscaped is appendString's end after the first i bytes of s, which
// need no escape, with the opening quote already appended.
func appendEscaped(b []byte, s string, i int) []byte {
	start := 0
	for i < len(s) {
		if i+8 <= len(s) && plain8(word(s, i)) {
			i += 8
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
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
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const (
	lsb8 = 0x0101010101010101
	msb8 = 0x8080808080808080
)

// word is the eight bytes of s from i, little-endian (one load).
func word(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// plain8 reports whether the 8 bytes of x are ASCII that appendString
// writes as is: none below 0x20, none 0x80 or above, no quote, no
// backslash. hasLess finds a byte below n, word-wide: subtracting n from
// each byte borrows into its top bit only when the byte was smaller (a
// byte with its top bit already set is excluded by ^x, and the msb8 test
// first).
func plain8(x uint64) bool {
	return x&msb8 == 0 && !hasLess(x, 0x20) && !hasLess(x^('"'*lsb8), 1) && !hasLess(x^('\\'*lsb8), 1)
}

// hasLess reports whether a byte of x (all below 0x80) is below n (n ≤ 0x80).
func hasLess(x, n uint64) bool { return (x-n*lsb8)&^x&msb8 != 0 }
