package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/meshguard/meshguard/audit"
)

// Reading a record back: decoding its JSON was most of a read by id and
// of a page (encoding/json's reflection and an allocation a string), so
// the JSON a record is stored as is decoded here by hand, into the same
// fields. json.Unmarshal stays the definition: unmarshalRecord gives its
// answer for whatever the hand decoder does not take exactly — a key it
// does not know or one twice, null, whitespace, a number that is not an
// integer where one is wanted, an escape or invalid UTF-8 in a string
// (those go through encoding/json one string at a time) — and the
// differential tests and fuzzing hold the two to the same records.

// unmarshalRecord sets *r as json.Unmarshal([]byte(raw), r) does on a
// zero r, and fails where it fails. Its strings are slices of raw.
func unmarshalRecord(raw string, r *audit.Record) error {
	p := jsonParser{s: raw}
	if p.record(r) && p.i == len(p.s) {
		return nil
	}
	// A new Record for encoding/json, so r itself is not handed to it
	// (which would put every caller's Record on the heap).
	var again audit.Record
	err := json.Unmarshal([]byte(raw), &again)
	*r = again
	return err
}

// unphrasedString reverses appendPhrased into a string of exactly the
// JSON's length (the record's strings are slices of it), refusing an
// unknown phrase.
func unphrasedString(src []byte) (string, error) {
	n := 0
	for rest := src; ; {
		k := bytes.IndexByte(rest, phraseMark)
		if k < 0 {
			n += len(rest)
			break
		}
		if k+1 >= len(rest) || int(rest[k+1]) >= len(bodyPhrases) {
			return "", fmt.Errorf("%w: unknown phrase", errBody)
		}
		n += k + len(bodyPhrases[rest[k+1]])
		rest = rest[k+2:]
	}
	if n > maxBodyLen {
		return "", fmt.Errorf("%w: too long", errBody)
	}
	var b strings.Builder
	b.Grow(n)
	for {
		k := bytes.IndexByte(src, phraseMark)
		if k < 0 {
			b.Write(src)
			return b.String(), nil
		}
		b.Write(src[:k])
		b.WriteString(bodyPhrases[src[k+1]])
		src = src[k+2:]
	}
}

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

// member moves to an object's next member and returns its key; done at
// the object's end. *n counts the members read (0 before the '{').
func (p *jsonParser) member(n *int) (key string, done, ok bool) {
	if *n == 0 {
		if !p.eat('{') {
			return "", false, false
		}
	}
	if p.eat('}') {
		return "", true, true
	}
	if *n > 0 && !p.eat(',') {
		return "", false, false
	}
	*n++
	key, ok = p.str()
	if !ok || !p.eat(':') {
		return "", false, false
	}
	return key, false, true
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
		for n := 0; ; {
			key, done, ok := p.member(&n)
			if !ok {
				return nil, false
			}
			if done {
				break
			}
			v, ok := p.value(build)
			if !ok {
				return nil, false
			}
			if build {
				m[key] = v
			}
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

// record reads an audit.Record's JSON object.
func (p *jsonParser) record(r *audit.Record) bool {
	var seen uint64
	for n := 0; ; {
		key, done, ok := p.member(&n)
		if !ok {
			return false
		}
		if done {
			return true
		}
		var f *string // a string member's field
		var bit uint
		switch key {
		case "id":
			f, bit = &r.ID, 0
		case "traceId":
			f, bit = &r.TraceID, 1
		case "spanId":
			f, bit = &r.SpanID, 2
		case "decisionId":
			f, bit = &r.DecisionID, 3
		case "agentId":
			f, bit = &r.AgentID, 4
		case "agentName":
			f, bit = &r.AgentName, 5
		case "trustTier":
			f, bit = &r.TrustTier, 6
		case "action":
			f, bit = &r.Action, 7
		case "resource":
			f, bit = &r.Resource, 8
		case "method":
			f, bit = &r.Method, 9
		case "path":
			f, bit = &r.Path, 10
		case "host":
			f, bit = &r.Host, 11
		case "decision":
			f, bit = &r.Decision, 12
		case "reason":
			f, bit = &r.Reason, 13
		case "policy":
			f, bit = &r.Policy, 14
		case "rule":
			f, bit = &r.Rule, 15
		case "source":
			f, bit = &r.Source, 16
		case "sourceAddress":
			f, bit = &r.SourceAddress, 17
		case "policyRevision":
			f, bit = &r.PolicyRevision, 18
		case "mode":
			f, bit = &r.Mode, 19
		case "proxy":
			f, bit = &r.Proxy, 20
		case "prevHash":
			f, bit = &r.PrevHash, 21
		case "hash":
			f, bit = &r.Hash, 22
		}
		if f != nil {
			if *f, ok = p.str(); !ok || !once(&seen, bit) {
				return false
			}
			continue
		}
		switch key {
		case "timestamp":
			start := p.i
			if _, ok := p.str(); !ok || !once(&seen, 23) {
				return false
			}
			// time.Time's own decoder, as json.Unmarshal calls it.
			if r.Timestamp.UnmarshalJSON([]byte(p.s[start:p.i])) != nil {
				return false
			}
		case "status", "delegationDepth":
			v, ok := p.integer()
			if !ok || int64(int(v)) != v {
				return false
			}
			if key == "status" {
				ok = once(&seen, 24)
				r.Status = int(v)
			} else {
				ok = once(&seen, 25)
				r.DelegationDepth = int(v)
			}
			if !ok {
				return false
			}
		case "latencyUs":
			if r.LatencyUs, ok = p.integer(); !ok || !once(&seen, 26) {
				return false
			}
		case "chain":
			if r.Chain, ok = p.strs(); !ok || !once(&seen, 27) {
				return false
			}
		case "context":
			if p.i >= len(p.s) || p.s[p.i] != '{' || !once(&seen, 28) {
				return false
			}
			v, ok := p.value(true)
			if !ok {
				return false
			}
			r.Context = v.(map[string]any)
		case "call":
			r.Call = new(audit.Call)
			if !once(&seen, 29) || !p.call(r.Call) {
				return false
			}
		case "inputs":
			r.Inputs = new(audit.Inputs)
			if !once(&seen, 30) || !p.inputs(r.Inputs) {
				return false
			}
		case "approval":
			r.Approval = new(audit.Approval)
			if !once(&seen, 31) || !p.strings2("id", &r.Approval.ID, "outcome", &r.Approval.Outcome) {
				return false
			}
		case "shadow":
			r.Shadow = new(audit.Shadow)
			if !once(&seen, 32) || !p.shadow(r.Shadow) {
				return false
			}
		default:
			return false
		}
	}
}

func (p *jsonParser) call(c *audit.Call) bool {
	var seen uint64
	for n := 0; ; {
		key, done, ok := p.member(&n)
		if !ok {
			return false
		}
		if done {
			return true
		}
		var f *string
		var b *bool
		var bit uint
		switch key {
		case "protocol":
			f, bit = &c.Protocol, 0
		case "method":
			f, bit = &c.Method, 1
		case "name":
			f, bit = &c.Name, 2
		case "jsonrpcId":
			f, bit = &c.JSONRPCID, 3
		case "sessionId":
			f, bit = &c.SessionID, 4
		case "taskId":
			f, bit = &c.TaskID, 5
		case "contextId":
			f, bit = &c.ContextID, 6
		case "argumentsDigest":
			f, bit = &c.ArgumentsDigest, 7
		case "notification":
			b, bit = &c.Notification, 8
		case "headerOnly":
			b, bit = &c.HeaderOnly, 9
		case "argumentsOmitted":
			b, bit = &c.ArgumentsOmitted, 10
		case "arguments":
			start := p.i
			if p.i >= len(p.s) || p.s[p.i] == 'n' || !once(&seen, 11) {
				return false // null: left to encoding/json
			}
			if _, ok := p.value(false); !ok {
				return false
			}
			// json.RawMessage keeps the value's bytes as they are.
			c.Arguments = json.RawMessage(p.s[start:p.i])
			continue
		default:
			return false
		}
		if !once(&seen, bit) {
			return false
		}
		if f != nil {
			if *f, ok = p.str(); !ok {
				return false
			}
		} else if *b, ok = p.boolean(); !ok {
			return false
		}
	}
}

func (p *jsonParser) inputs(in *audit.Inputs) bool {
	var seen uint64
	for n := 0; ; {
		key, done, ok := p.member(&n)
		if !ok {
			return false
		}
		if done {
			return true
		}
		switch key {
		case "tags":
			in.Tags, ok = p.strs()
			ok = ok && once(&seen, 0)
		case "revoked":
			in.Revoked, ok = p.boolean()
			ok = ok && once(&seen, 1)
		case "chain":
			ok = once(&seen, 2) && p.chainMembers(in)
		case "scope":
			in.Scope, ok = p.strs()
			ok = ok && once(&seen, 3)
		case "absent":
			in.Absent, ok = p.strs()
			ok = ok && once(&seen, 4)
		case "afterPolicy":
			in.AfterPolicy, ok = p.boolean()
			ok = ok && once(&seen, 5)
		default:
			return false
		}
		if !ok {
			return false
		}
	}
}

func (p *jsonParser) chainMembers(in *audit.Inputs) bool {
	if !p.eat('[') {
		return false
	}
	in.Chain = []audit.ChainMember{}
	if p.eat(']') {
		return true
	}
	for {
		var m audit.ChainMember
		var seen uint64
		for n := 0; ; {
			key, done, ok := p.member(&n)
			if !ok {
				return false
			}
			if done {
				break
			}
			switch key {
			case "name":
				m.Name, ok = p.str()
				ok = ok && once(&seen, 0)
			case "tier":
				m.Tier, ok = p.str()
				ok = ok && once(&seen, 1)
			case "tags":
				m.Tags, ok = p.strs()
				ok = ok && once(&seen, 2)
			case "revoked":
				m.Revoked, ok = p.boolean()
				ok = ok && once(&seen, 3)
			default:
				return false
			}
			if !ok {
				return false
			}
		}
		in.Chain = append(in.Chain, m)
		if p.eat(']') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

func (p *jsonParser) shadow(s *audit.Shadow) bool {
	var seen uint64
	for n := 0; ; {
		key, done, ok := p.member(&n)
		if !ok {
			return false
		}
		if done {
			return true
		}
		var f *string
		var bit uint
		switch key {
		case "decision":
			f, bit = &s.Decision, 0
		case "reason":
			f, bit = &s.Reason, 1
		case "policy":
			f, bit = &s.Policy, 2
		case "rule":
			f, bit = &s.Rule, 3
		default:
			return false
		}
		if *f, ok = p.str(); !ok || !once(&seen, bit) {
			return false
		}
	}
}

// strings2 reads an object of at most the two string members named.
func (p *jsonParser) strings2(k1 string, f1 *string, k2 string, f2 *string) bool {
	var seen uint64
	for n := 0; ; {
		key, done, ok := p.member(&n)
		if !ok {
			return false
		}
		if done {
			return true
		}
		var f *string
		var bit uint
		switch key {
		case k1:
			f, bit = f1, 0
		case k2:
			f, bit = f2, 1
		default:
			return false
		}
		if *f, ok = p.str(); !ok || !once(&seen, bit) {
			return false
		}
	}
}
