package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// The stored form of an audit record (docs/storage.md). The columns hold
// what queries filter on (id, ts, agent, action, decision, trace id,
// status, reason, source), so the record column keeps only the rest: the
// canonical encoding without those members, its common phrases
// abbreviated to two bytes (deflate with a preset dictionary was smaller
// but cost 40 µs a record; the writer's whole cost is 13). Reading it back decodes that JSON and sets the columns'
// fields, which gives the same Record, so its canonical encoding — what the
// hash covers — is byte for byte the one sealed. An edited column thus
// changes the record verification re-encodes, and breaks its hash.
//
// Rows written before this form (migrations 0013/0016) keep their full
// canonical JSON, which starts with '{'; a compact record starts with
// bodyV1.

const (
	bodyV1 byte = 1

	// Flags of a v1 body (its second byte).
	flagDecisionID = 1 << 0 // decisionId is "dec_" + the id after "aud_", so not stored
	flagTime       = 1 << 1 // timestamp is ts plus the nanoseconds stored next (uvarint)
)

// maxBodyLen bounds what one stored record inflates to; the writer's
// records are far smaller (a call's arguments are bounded by the proxy).
const maxBodyLen = 16 << 20

// isColumnMember says whether a member of the canonical encoding is one
// the columns hold (a switch: a map lookup a member was a tenth of the
// encoding's cost).
func isColumnMember(key []byte) bool {
	switch string(key) {
	case "id", "traceId", "agentId", "action", "decision", "status", "reason", "source":
		return true
	}
	return false
}

// bodyPhrases are what most records repeat: the members left after the
// columns', in the canonical order, and common values. A body stores each
// as phraseMark and the phrase's index. JSON never holds a raw 0x01 byte
// (control characters are escaped), so the mark is unambiguous. The list
// is bodyV1's format: append only, never reorder (at most 256).
var bodyPhrases = [...]string{
	`{"spanId":"`, `","decisionId":"dec_`, `","agentName":"`, `","trustTier":"verified","resource":"`,
	`","trustTier":"trusted","resource":"`, `","trustTier":"untrusted","resource":"`, `","trustTier":"privileged","resource":"`,
	`","trustTier":"`, `","resource":"`, `","method":"GET","path":"`, `","method":"POST","path":"`, `","method":"PUT","path":"`,
	`","method":"DELETE","path":"`, `","method":"PATCH","path":"`, `","method":"`, `","path":"`, `","host":"`, `","policy":"`,
	`","rule":"`, `","chain":["agent_`, `","chain":[],"delegationDepth":0,"sourceAddress":"`, `","agent_`,
	`"],"delegationDepth":0,"sourceAddress":"`, `"],"delegationDepth":1,"sourceAddress":"`, `"],"delegationDepth":`,
	`,"sourceAddress":"`, `","policyRevision":"`, `","latencyUs":`, `,"context":{`, `,"context":{},"mode":"enforce"`,
	`,"mode":"enforce"`, `,"mode":"`, `,"proxy":"`, `,"call":{"protocol":"mcp","method":"tools/call","name":"`,
	`,"call":{"protocol":"`, `","jsonrpcId":"`,
	`","notification":false,"headerOnly":false,"sessionId":"","taskId":"","contextId":"","argumentsDigest":"","argumentsOmitted":false}`,
	`","notification":false,"headerOnly":false,"sessionId":"`, `","notification":`, `,"headerOnly":`, `","taskId":"`,
	`","contextId":"`, `","argumentsDigest":"`, `,"arguments":`, `,"argumentsOmitted":false}`, `,"argumentsOmitted":true}`,
	`,"inputs":{"tags":["`, `"]}}`, `"],"chain":[{"name":"`, `","tier":"`, `","tags":["`, `,"absent":["`, `"arguments.`,
	`"header.`, `"query.`, `,"scope":[`, `,"revoked":true`, `,"afterPolicy":true`, `,"approval":{"id":"`, `","outcome":"`,
	`,"shadow":{"decision":"allow","reason":"`, `,"shadow":{"decision":"deny","reason":"`, `","reason":"`, `","name":"`,
	`{"timestamp":"20`, `","`, `false`, `true`, `null`, `10.0.`, `127.0.0.1`,
	`"arguments.to":"`, `tools/call`, `.internal`, `policy_denied`, `no_matching_rule`, `":{"`,
}

// phraseMark starts a phrase in a v1 body.
const phraseMark = 0x01

// phrases is appendPhrased's index: a phrase of four bytes or more is
// found by its first and fourth bytes (most phrases share their first
// three, `","`), a shorter one by its first byte; each list longest first.
type phrases struct {
	bucket [1 << 16]uint8 // first<<8 | fourth byte → 1 + an index into long
	long   [][]uint8
	short  [256][]uint8
	starts [256]bool // whether any phrase starts with the byte
}

var phraseIndex = sync.OnceValue(func() *phrases {
	var x phrases
	x.long = [][]uint8{nil} // bucket 0: none
	for i, p := range bodyPhrases {
		x.starts[p[0]] = true
		if len(p) < 4 {
			x.short[p[0]] = append(x.short[p[0]], uint8(i))
			continue
		}
		k := uint16(p[0])<<8 | uint16(p[3])
		if x.bucket[k] == 0 {
			x.bucket[k] = uint8(len(x.long))
			x.long = append(x.long, nil)
		}
		x.long[x.bucket[k]] = append(x.long[x.bucket[k]], uint8(i))
	}
	longestFirst := func(l []uint8) {
		slices.SortStableFunc(l, func(a, b uint8) int { return len(bodyPhrases[b]) - len(bodyPhrases[a]) })
	}
	for _, l := range x.long {
		longestFirst(l)
	}
	for _, l := range x.short {
		longestFirst(l)
	}
	return &x
})

// appendPhrased appends src with each longest known phrase replaced by its
// mark and index.
func appendPhrased(out, src []byte) []byte {
	x := phraseIndex()
	for i := 0; i < len(src); {
		if !x.starts[src[i]] {
			// Copy the run of bytes that start no phrase at once.
			j := i + 1
			for j < len(src) && !x.starts[src[j]] {
				j++
			}
			out = append(out, src[i:j]...)
			i = j
			continue
		}
		n := 0
		if len(src)-i >= 4 {
			for _, p := range x.long[x.bucket[uint16(src[i])<<8|uint16(src[i+3])]] {
				// The last byte first: the full compare is what costs.
				if ph := bodyPhrases[p]; len(src)-i >= len(ph) && src[i+len(ph)-1] == ph[len(ph)-1] && string(src[i:i+len(ph)]) == ph {
					out = append(out, phraseMark, p)
					n = len(ph)
					break
				}
			}
		}
		if n == 0 {
			for _, p := range x.short[src[i]] {
				if ph := bodyPhrases[p]; len(src)-i >= len(ph) && string(src[i:i+len(ph)]) == ph {
					out = append(out, phraseMark, p)
					n = len(ph)
					break
				}
			}
		}
		if n == 0 {
			out = append(out, src[i])
			n = 1
		}
		i += n
	}
	return out
}

// appendUnphrased reverses appendPhrased, refusing an unknown phrase.
func appendUnphrased(out, src []byte) ([]byte, error) {
	for {
		k := bytes.IndexByte(src, phraseMark)
		if k < 0 {
			return append(out, src...), nil
		}
		if k+1 >= len(src) || int(src[k+1]) >= len(bodyPhrases) {
			return nil, fmt.Errorf("%w: unknown phrase", errBody)
		}
		out = append(append(out, src[:k]...), bodyPhrases[src[k+1]]...)
		if len(out) > maxBodyLen {
			return nil, fmt.Errorf("%w: too long", errBody)
		}
		src = src[k+2:]
	}
}

// encodeAuditBody is r's record column: canon (r's canonical encoding)
// without the columns' members, its common phrases abbreviated.
func encodeAuditBody(r *audit.Record, canon []byte) ([]byte, error) {
	var flags byte
	var nanos uint64
	if id, ok := strings.CutPrefix(r.ID, "aud_"); ok && r.DecisionID == "dec_"+id {
		flags |= flagDecisionID
	}
	if t := r.Timestamp.UTC(); t.Equal(fromMicros(t.UnixMicro()).Add(time.Duration(t.Nanosecond() % 1000))) {
		flags |= flagTime
		nanos = uint64(t.Nanosecond() % 1000)
	}
	scratch := bodyScratch.Get().(*[2][]byte)
	defer bodyScratch.Put(scratch)
	rest := scratch[0][:0]
	defer func() { scratch[0] = rest[:0] }()
	err := eachMember(canon, func(key, member []byte) {
		switch {
		case isColumnMember(key), string(key) == "decisionId" && flags&flagDecisionID != 0, string(key) == "timestamp" && flags&flagTime != 0:
		default:
			rest = appendMember(rest, member)
		}
	})
	if err != nil {
		return nil, err
	}
	rest = append(rest, '}')
	if bytes.IndexByte(rest, phraseMark) >= 0 {
		return nil, fmt.Errorf("%w: a raw 0x01 byte in the record", errBody)
	}
	phrased := append(scratch[1][:0], bodyV1, flags)
	if flags&flagTime != 0 {
		phrased = binary.AppendUvarint(phrased, nanos)
	}
	phrased = appendPhrased(phrased, rest)
	scratch[1] = phrased[:0]
	// The body lives until its batch is stored: one allocation of its own
	// size (about half the canonical encoding's), the scratch reused.
	return bytes.Clone(phrased), nil
}

// bodyScratch holds encodeAuditBody's two working buffers (the members
// kept, then phrased), which only the body's copy outlives.
var bodyScratch = sync.Pool{New: func() any { return new([2][]byte) }}

// errBody says a stored record does not decode.
var errBody = errors.New("stored record does not decode")

// auditColumns are a stored record's columns.
type auditColumns struct {
	id, agentID, action, decision, traceID, reason, source string
	ts                                                     int64
	status                                                 int
	shadow                                                 bool
}

// decodeAuditBody rebuilds a record from its record column and columns.
// A row that does not decode, or whose columns disagree with a full JSON
// record, comes back marked Unreadable (see scanAuditRows).
func decodeAuditBody(body []byte, c auditColumns) audit.Record {
	var r audit.Record
	switch {
	case len(body) > 0 && body[0] == '{':
		// Written before the compact form: the whole canonical JSON.
		if unmarshalRecord(string(body), &r) != nil {
			return audit.Record{ID: c.id, Unreadable: "its stored record is not JSON"}
		}
		// Shadow one way only: the migration set it by a text search, a
		// superset the filters' callers narrow, but one that finds every
		// record with a shadow answer; a cleared one hides it from them.
		if r.Shadow != nil && !c.shadow {
			r.Unreadable = "its shadow column disagrees with the hashed record (the row was edited)"
			return r
		}
		if r.ID != c.id || r.AgentID != c.agentID || r.Action != c.action || r.Decision != c.decision || r.Timestamp.UnixMicro() != c.ts ||
			r.TraceID != c.traceID || r.Status != c.status || r.Reason != c.reason || r.Source != c.source {
			r.Unreadable = "its indexed columns disagree with the hashed record (the row was edited)"
		}
		return r
	case len(body) >= 2 && body[0] == bodyV1:
		if err := decodeV1(body, c, &r); err != nil {
			return audit.Record{ID: c.id, Unreadable: err.Error()}
		}
		if (r.Shadow != nil) != c.shadow {
			r.Unreadable = "its shadow column disagrees with the hashed record (the row was edited)"
		}
		return r
	}
	return audit.Record{ID: c.id, Unreadable: "its stored record is in no known form"}
}

func decodeV1(body []byte, c auditColumns, r *audit.Record) error {
	flags, rest := body[1], body[2:]
	var nanos uint64
	if flags&flagTime != 0 {
		var n int
		nanos, n = binary.Uvarint(rest)
		if n <= 0 || nanos > 999 {
			return fmt.Errorf("%w: bad time", errBody)
		}
		rest = rest[n:]
	}
	if flags&^(flagDecisionID|flagTime) != 0 {
		return fmt.Errorf("%w: unknown flags %#x", errBody, flags)
	}
	raw, err := unphrasedString(rest)
	if err != nil {
		return err
	}
	if err := unmarshalRecord(raw, r); err != nil {
		return fmt.Errorf("%w: its record is not JSON", errBody)
	}
	// The members the columns hold must not be in the body: a body that
	// has them was not written by encodeAuditBody.
	if r.ID != "" || r.AgentID != "" || r.Action != "" || r.Decision != "" || r.TraceID != "" || r.Status != 0 ||
		r.Reason != "" || r.Source != "" || (flags&flagDecisionID != 0 && r.DecisionID != "") || (flags&flagTime != 0 && !r.Timestamp.IsZero()) {
		return fmt.Errorf("%w: its record repeats a column", errBody)
	}
	r.ID, r.AgentID, r.Action, r.Decision, r.TraceID = c.id, c.agentID, c.action, c.decision, c.traceID
	r.Status, r.Reason, r.Source = c.status, c.reason, c.source
	if flags&flagDecisionID != 0 {
		id, ok := strings.CutPrefix(c.id, "aud_")
		if !ok {
			return fmt.Errorf("%w: its decision id is derived from an id without the aud_ prefix", errBody)
		}
		r.DecisionID = "dec_" + id
	}
	if flags&flagTime != 0 {
		r.Timestamp = fromMicros(c.ts).Add(time.Duration(nanos))
	}
	return nil
}

func appendMember(out, member []byte) []byte {
	if len(out) == 0 {
		out = append(out, '{')
	} else {
		out = append(out, ',')
	}
	return append(out, member...)
}

// eachMember calls fn with each top-level member of a JSON object (its key
// unquoted — keys the audit package writes have no escapes — and the
// member's bytes, key to value). It does not validate values beyond
// finding where they end.
func eachMember(obj []byte, fn func(key, member []byte)) error {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return fmt.Errorf("%w: not a JSON object", errBody)
	}
	i := 1
	for i < len(obj)-1 {
		start := i
		if obj[i] != '"' {
			return fmt.Errorf("%w: expected a key at byte %d", errBody, i)
		}
		end := bytes.IndexByte(obj[i+1:], '"')
		if end < 0 {
			return fmt.Errorf("%w: unterminated key", errBody)
		}
		key := obj[i+1 : i+1+end]
		i += end + 2
		if i >= len(obj) || obj[i] != ':' {
			return fmt.Errorf("%w: expected ':' at byte %d", errBody, i)
		}
		depth := 0
	value:
		for i++; i < len(obj); i++ {
			switch obj[i] {
			case '"':
				// Jump to the string's end: most of a record is strings.
				i, _ = stringEnd(obj, i+1)
			case '{', '[':
				depth++
			case '}', ']':
				if depth > 0 {
					depth--
				} else if obj[i] == '}' {
					break value
				}
			case ',':
				if depth == 0 {
					break value
				}
			}
		}
		if i >= len(obj) {
			return fmt.Errorf("%w: unterminated member %q", errBody, key)
		}
		fn(key, obj[start:i])
		if obj[i] == ',' {
			i++
		}
	}
	return nil
}

// stringEnd is the index of the quote that ends the JSON string whose
// bytes start at obj[i], len(obj) when it does not end, and how many
// times it looked for a quote. It looks for the next quote again only
// when an escape took the one it found: looking at every escape, a value
// of n escaped backslashes or control characters (a path, a header a
// policy reads, recorded arguments) cost n searches to the string's end,
// and a 64 KB one 150 ms of the writer's time.
func stringEnd(obj []byte, i int) (end, searches int) {
	q := -1 // the next quote at or after i, once found
	for i < len(obj) {
		if q < i {
			searches++
			k := bytes.IndexByte(obj[i:], '"')
			if k < 0 {
				return len(obj), searches
			}
			q = i + k
		}
		e := bytes.IndexByte(obj[i:q], '\\')
		if e < 0 {
			return q, searches
		}
		i += e + 2 // past the backslash and the byte it escapes
	}
	return len(obj), searches
}

// hashBytes is a sealed hash (64 lower-case hex digits) as its 32 bytes.
func hashBytes(h string) ([]byte, error) {
	if len(h) != 64 {
		return nil, fmt.Errorf("hash %.16q…: expected 64 lower-case hex digits", h)
	}
	// Lower case only, so the text reads back as sealed; decoded here (a
	// round trip through hex.EncodeToString cost two allocations).
	b := make([]byte, 32)
	for i := range b {
		hi, lo := lowerHex[h[2*i]], lowerHex[h[2*i+1]]
		if hi|lo > 0xf {
			return nil, fmt.Errorf("hash %.16q…: expected 64 lower-case hex digits", h)
		}
		b[i] = hi<<4 | lo
	}
	return b, nil
}

// lowerHex is each byte's value as a lower-case hex digit, 0xff if none.
var lowerHex = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()

// hashText is a stored hash as the audit package writes it. A value that is
// not 32 bytes (one a migration kept as it found it, not being hex) is
// returned as text, so verification reports it rather than the read failing.
func hashText(b []byte) string {
	if len(b) == 32 {
		return hex.EncodeToString(b)
	}
	return string(b)
}
