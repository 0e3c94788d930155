package replay

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

// Why a record could not be decided again: the keys of Report.NotRedecided.
const (
	WhyBeforeInputs     = "recorded before inputs"     // sealed before records held their inputs
	WhyRedacted         = "redacted"                   // a value the candidate reads was redacted (AUDIT_REDACT)
	WhyArgumentsMissing = "arguments not recorded"     // the candidate reads an argument no record holds (AUDIT_ARGUMENTS off, or too large)
	WhyValueMissing     = "request value not recorded" // the candidate reads a header or query parameter no policy read then
	WhyUnreadable       = "unreadable record"          // the stored record is not one (a broken row), or its inputs contradict it
	WhyArgumentCase     = "argument in another case"   // the candidate reads an argument the call spelt in another case: the engine refuses such a call
)

// errNot carries why a record cannot be decided again.
type errNot struct{ why, key string }

func (e *errNot) Error() string {
	if e.key != "" {
		return e.why + ": " + e.key
	}
	return e.why
}

func not(why, key string) error { return &errNot{why: why, key: key} }

// sourceAPI is engine.SourceAPI: POST /v1/check, where the caller states
// the whole context (the replay package does not build on the engine).
const sourceAPI = "api"

// builder rebuilds a policy.Input from a record, reusing its buffers
// from one record to the next: a replay reads millions.
type builder struct {
	keys  []string // the candidate's request keys (policy.Set.RequestKeys)
	rules []keyedRule
	need  []string // the keys the rules matching one record's action read
	ctx   map[string]any
	chain []policy.Subject
}

// keyedRule is a candidate rule that reads request values: a record
// needs those values only when its action is one the rule matches (the
// delegation checks evaluate the same action for each delegator).
type keyedRule struct {
	actions []policy.Glob
	keys    []string
}

func newBuilder(set *policy.Set) builder {
	b := builder{keys: set.RequestKeys()}
	for _, p := range set.Policies() {
		for i := range p.Rules {
			r := &p.Rules[i]
			if r.Conditions == nil {
				continue
			}
			var kr keyedRule
			for k := range r.Conditions.Context {
				if slices.Contains(b.keys, k) {
					kr.keys = append(kr.keys, k)
				}
			}
			if kr.keys == nil {
				continue
			}
			for _, a := range r.Actions {
				kr.actions = append(kr.actions, policy.CompileGlob(a))
			}
			b.rules = append(b.rules, kr)
		}
	}
	return b
}

// needed is the request keys a decision on action can read.
func (b *builder) needed(action string) []string {
	b.need = b.need[:0]
	for i := range b.rules {
		r := &b.rules[i]
		for _, g := range r.actions {
			if g.Match(action) {
				for _, k := range r.keys {
					if !slices.Contains(b.need, k) {
						b.need = append(b.need, k)
					}
				}
				break
			}
		}
	}
	return b.need
}

// input fills in from rec, or says why it cannot: the record's own
// action, resource, time, effective tier and chain, its inputs, and the
// request values the candidate reads — each either recorded, or recorded
// as absent; anything else would be a guess.
func (b *builder) input(rec *audit.Record, in *policy.Input) error {
	ri := rec.Inputs
	tier, err := trust.Parse(rec.TrustTier)
	if err != nil {
		return not(WhyUnreadable, "trustTier")
	}
	*in = policy.Input{Agent: policy.Subject{ID: rec.AgentID, Name: rec.AgentName, Tier: tier, Tags: ri.Tags, Active: !ri.Revoked},
		Action: rec.Action, Resource: rec.Resource, Scope: ri.Scope, Time: rec.Timestamp,
		ArgumentsUnknown: rec.Call != nil && rec.Call.HeaderOnly}
	if n := len(rec.Chain); n > 1 || len(ri.Chain) > 0 {
		if n != len(ri.Chain)+1 || rec.Chain[n-1] != rec.AgentID {
			return not(WhyUnreadable, "chain")
		}
		b.chain = b.chain[:0]
		for i := range ri.Chain {
			m := &ri.Chain[i]
			t, err := trust.Parse(m.Tier)
			if err != nil {
				return not(WhyUnreadable, "chain tier")
			}
			b.chain = append(b.chain, policy.Subject{ID: rec.Chain[i], Name: m.Name, Tier: t, Tags: m.Tags, Active: !m.Revoked})
		}
		in.Chain = b.chain
	}
	keys := b.needed(rec.Action)
	if rec.Source == sourceAPI {
		// The caller's whole context, as recorded: only the arguments in
		// it may have been redacted.
		for _, k := range keys {
			if policy.IsArgumentsKey(k) {
				if v, ok := cooperativeArgument(rec.Context, k); ok && hasRedacted(v) {
					return not(WhyRedacted, k)
				}
			}
		}
		in.Context = rec.Context
		return nil
	}
	if len(keys) == 0 {
		return nil
	}
	if b.ctx == nil {
		b.ctx = make(map[string]any, len(b.keys))
	}
	clear(b.ctx)
	var args map[string]any // the recorded arguments, decoded once
	for _, k := range keys {
		if v, ok := rec.Context[k]; ok {
			if policy.IsArgumentsKey(k) && hasRedacted(v) {
				return not(WhyRedacted, k)
			}
			b.ctx[k] = v
			continue
		}
		if contains(ri.Absent, k) {
			continue
		}
		path, isArg := strings.CutPrefix(k, policy.ArgumentsKeyPrefix)
		if !isArg {
			return not(WhyValueMissing, k)
		}
		c := rec.Call
		switch {
		case c == nil || c.HeaderOnly || c.ArgumentsDigest == "":
			// No call, no arguments: absent. Header-only: unknown, and
			// the input says so (ArgumentsUnknown).
			continue
		case c.Arguments == nil:
			return not(WhyArgumentsMissing, k)
		}
		if args == nil {
			if args, err = decodeArgs(c.Arguments); err != nil {
				return not(WhyUnreadable, "call.arguments")
			}
		}
		v, ok, redacted, folded := callArgument(args, path)
		switch {
		case folded:
			return not(WhyArgumentCase, k)
		case redacted:
			return not(WhyRedacted, k)
		case ok:
			b.ctx[k] = v
		}
	}
	in.Context = b.ctx
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// decodeArgs decodes recorded arguments as the engine reads a call's:
// numbers as written.
func decodeArgs(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("null arguments")
	}
	return m, nil
}

// argument is the value at a dot path of recorded arguments, and whether
// the path crosses, or the value holds, a redacted member.
func argument(args map[string]any, path string) (v any, ok, redacted bool) {
	var cur any = args
	for seg := range strings.SplitSeq(path, ".") {
		if cur == audit.Redacted {
			return nil, false, true
		}
		m, isMap := cur.(map[string]any)
		if !isMap {
			return nil, false, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false, false
		}
	}
	return cur, true, hasRedacted(cur)
}

// callArgument is the value at a dot path of a call's recorded arguments
// as the engine reads a call's (agentproto.Call.Argument): through
// objects, and, from the first list on the path, in each of its elements,
// flattened (recipients.email over recipients: [{email: …}, …] is the
// list of every email). It also reports whether the path crosses, or the
// value holds, a redacted member, and whether a member on the path is
// spelt in another case — a call the engine refuses rather than decides.
func callArgument(args map[string]any, path string) (v any, ok, redacted, folded bool) {
	var cur any = args
	for path != "" {
		name, rest, _ := strings.Cut(path, ".")
		switch m := cur.(type) {
		case []any:
			out, redacted, folded := listArgument(m, path, nil)
			if redacted || folded || out == nil {
				return nil, false, redacted, folded
			}
			return out, true, hasRedacted(out), false
		case map[string]any:
			e, found := m[name]
			if !found {
				return nil, false, false, hasFold(m, name)
			}
			cur, path = e, rest
		case string:
			return nil, false, m == audit.Redacted, false
		default:
			return nil, false, false, false
		}
	}
	return cur, true, hasRedacted(cur), false
}

// listArgument appends to out the value at path in each element of the
// list l, as agentproto's listArgument reads them: elements without the
// path add nothing, a list found at the path's end adds its elements.
func listArgument(l []any, path string, out []any) (_ []any, redacted, folded bool) {
	for _, e := range l {
		if out, redacted, folded = elementArgument(e, path, out); redacted || folded {
			return nil, redacted, folded
		}
	}
	return out, false, false
}

func elementArgument(v any, path string, out []any) (_ []any, redacted, folded bool) {
	if path == "" {
		return append(out, v), false, false
	}
	switch v := v.(type) {
	case []any:
		return listArgument(v, path, out)
	case map[string]any:
		name, rest, _ := strings.Cut(path, ".")
		e, found := v[name]
		if !found {
			return out, false, hasFold(v, name)
		}
		if l, isList := e.([]any); isList && rest == "" {
			return append(out, l...), false, false
		}
		return elementArgument(e, rest, out)
	case string:
		return out, v == audit.Redacted, false
	}
	return out, false, false
}

// hasFold reports whether m holds name in another case.
func hasFold(m map[string]any, name string) bool {
	for k := range m {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// cooperativeArgument is what key reads in a POST /v1/check context: the
// key itself, or a member of its "arguments" object.
func cooperativeArgument(ctx map[string]any, key string) (any, bool) {
	if v, ok := ctx[key]; ok {
		return v, true
	}
	if args, ok := ctx["arguments"].(map[string]any); ok {
		v, ok, redacted := argument(args, key[len(policy.ArgumentsKeyPrefix):])
		if redacted {
			return audit.Redacted, true
		}
		return v, ok
	}
	return nil, false
}

// hasRedacted reports whether v is, or holds at any depth, a redacted
// value: a decision on it would be a decision on "[redacted]".
func hasRedacted(v any) bool {
	switch v := v.(type) {
	case string:
		return v == audit.Redacted
	case map[string]any:
		for _, e := range v {
			if hasRedacted(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasRedacted(e) {
				return true
			}
		}
	}
	return false
}
