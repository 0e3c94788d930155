package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

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

// record reads an audit.Record's JSON object.
func (p *jsonParser) record(r *audit.Record) bool {
	var seen uint64
	return p.object(func(key string) bool {
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
			var ok bool
			*f, ok = p.str()
			return ok && once(&seen, bit)
		}
		return p.recordMember(r, key, &seen)
	})
}

// recordMember reads the record's member key that is not a string.
func (p *jsonParser) recordMember(r *audit.Record, key string, seen *uint64) bool {
	var ok bool
	switch key {
	case "timestamp":
		start := p.i
		if _, ok := p.str(); !ok || !once(seen, 23) {
			return false
		}
		// time.Time's own decoder, as json.Unmarshal calls it.
		return r.Timestamp.UnmarshalJSON([]byte(p.s[start:p.i])) == nil
	case "status", "delegationDepth":
		v, ok := p.integer()
		if !ok || int64(int(v)) != v {
			return false
		}
		if key == "status" {
			r.Status = int(v)
			return once(seen, 24)
		}
		r.DelegationDepth = int(v)
		return once(seen, 25)
	case "latencyUs":
		r.LatencyUs, ok = p.integer()
		return ok && once(seen, 26)
	case "chain":
		r.Chain, ok = p.strs()
		return ok && once(seen, 27)
	case "context":
		if p.i >= len(p.s) || p.s[p.i] != '{' || !once(seen, 28) {
			return false
		}
		v, ok := p.value(true)
		if ok {
			r.Context = v.(map[string]any)
		}
		return ok
	case "call":
		r.Call = new(audit.Call)
		return once(seen, 29) && p.call(r.Call)
	case "inputs":
		r.Inputs = new(audit.Inputs)
		return once(seen, 30) && p.inputs(r.Inputs)
	case "approval":
		r.Approval = new(audit.Approval)
		return once(seen, 31) && p.strings2("id", &r.Approval.ID, "outcome", &r.Approval.Outcome)
	case "shadow":
		r.Shadow = new(audit.Shadow)
		return once(seen, 32) && p.shadow(r.Shadow)
	}
	return false
}

func (p *jsonParser) call(c *audit.Call) bool {
	var seen uint64
	return p.object(func(key string) bool {
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
			return true
		default:
			return false
		}
		if !once(&seen, bit) {
			return false
		}
		var ok bool
		if f != nil {
			*f, ok = p.str()
		} else {
			*b, ok = p.boolean()
		}
		return ok
	})
}

func (p *jsonParser) inputs(in *audit.Inputs) bool {
	var seen uint64
	return p.object(func(key string) bool {
		var ok bool
		switch key {
		case "tags":
			in.Tags, ok = p.strs()
			return ok && once(&seen, 0)
		case "revoked":
			in.Revoked, ok = p.boolean()
			return ok && once(&seen, 1)
		case "chain":
			return once(&seen, 2) && p.chainMembers(in)
		case "scope":
			in.Scope, ok = p.strs()
			return ok && once(&seen, 3)
		case "absent":
			in.Absent, ok = p.strs()
			return ok && once(&seen, 4)
		case "afterPolicy":
			in.AfterPolicy, ok = p.boolean()
			return ok && once(&seen, 5)
		}
		return false
	})
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
		if !p.object(func(key string) bool {
			var ok bool
			switch key {
			case "name":
				m.Name, ok = p.str()
				return ok && once(&seen, 0)
			case "tier":
				m.Tier, ok = p.str()
				return ok && once(&seen, 1)
			case "tags":
				m.Tags, ok = p.strs()
				return ok && once(&seen, 2)
			case "revoked":
				m.Revoked, ok = p.boolean()
				return ok && once(&seen, 3)
			}
			return false
		}) {
			return false
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
	return p.object(func(key string) bool {
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
		var ok bool
		*f, ok = p.str()
		return ok && once(&seen, bit)
	})
}

// strings2 reads an object of at most the two string members named.
func (p *jsonParser) strings2(k1 string, f1 *string, k2 string, f2 *string) bool {
	var seen uint64
	return p.object(func(key string) bool {
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
		var ok bool
		*f, ok = p.str()
		return ok && once(&seen, bit)
	})
}
