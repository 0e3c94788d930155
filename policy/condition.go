package policy

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// compiledConditions is Conditions with patterns compiled, the timezone
// loaded and the window in minutes: nothing is parsed per request.
type compiledConditions struct {
	resource *compiledResource
	context  []compiledContext // sorted by key, for stable explain output
	time     *compiledTime
	// delegated is nil when the rule does not care.
	delegated *bool
	chainRoot globs
	chainIncl globs
	// deny: the rule's effect is deny, for a condition on arguments that
	// cannot be read (Input.ArgumentsUnknown, ArgumentsAny).
	deny bool
}

type compiledResource struct {
	matches    globs
	startsWith string
	contains   string
}

type compiledContext struct {
	key                 string
	args                bool   // an arguments.* key
	label               string // "context.<key>", for explain output without a per-request concatenation
	*ContextCondition          // the parsed rule's, shared
	matches, notMatches *Glob
}

type compiledTime struct {
	loc        *time.Location
	start, end int   // minutes since midnight; start == end == 0: all day
	days       uint8 // bit per time.Weekday; 0 = every day
}

func compileConditions(c *Conditions) (*compiledConditions, error) {
	cc := &compiledConditions{delegated: c.Delegated}
	if r := c.Resource; r != nil {
		cc.resource = &compiledResource{matches: compileGlobs(r.Matches), startsWith: r.StartsWith, contains: r.Contains}
	}
	for key, ctx := range c.Context {
		k := compiledContext{key: key, label: "context." + key, ContextCondition: ctx, args: IsArgumentsKey(key)}
		if ctx.Matches != nil {
			g := CompileGlob(*ctx.Matches)
			k.matches = &g
		}
		if ctx.NotMatches != nil {
			g := CompileGlob(*ctx.NotMatches)
			k.notMatches = &g
		}
		cc.context = append(cc.context, k)
	}
	sortByKey(cc.context)
	if t := c.Time; t != nil {
		loc, err := loadLocation(t.Timezone)
		if err != nil {
			return nil, err
		}
		ct := &compiledTime{loc: loc}
		if t.Between != "" {
			if ct.start, ct.end, err = parseWindow(t.Between); err != nil {
				return nil, err
			}
		}
		for _, d := range t.Days {
			for i, name := range dayNames {
				if name == d {
					ct.days |= 1 << i
				}
			}
		}
		cc.time = ct
	}
	if ch := c.Chain; ch != nil {
		cc.chainRoot = compileGlobs(ch.Root)
		cc.chainIncl = compileGlobs(ch.Includes)
	}
	return cc, nil
}

func sortByKey(cs []compiledContext) {
	slices.SortFunc(cs, func(a, b compiledContext) int { return strings.Compare(a.key, b.key) })
}

// holds reports whether every condition holds for in; when it does not, it
// names the first failing condition for explain output.
func (c *compiledConditions) holds(in *Input) (bool, string) {
	if c.delegated != nil && *c.delegated != (len(in.Chain) > 0) {
		return false, "delegated"
	}
	if r := c.resource; r != nil {
		if len(r.matches) > 0 && !r.matches.Match(in.Resource) {
			return false, "resource.matches"
		}
		if r.startsWith != "" && !strings.HasPrefix(in.Resource, r.startsWith) {
			return false, "resource.startsWith"
		}
		if r.contains != "" && !strings.Contains(in.Resource, r.contains) {
			return false, "resource.contains"
		}
	}
	for i := range c.context {
		k := &c.context[i]
		if k.args && (in.ArgumentsUnknown || in.ArgumentsAny) {
			// Unknown: holds for deny, fails for allow (never an
			// allow on a guess); any: the reverse (what could be
			// allowed).
			if c.deny == in.ArgumentsUnknown {
				continue
			}
			return false, k.label
		}
		raw, present := in.Context[k.key]
		if !present && k.args {
			// A context stating the arguments as an object, as a call
			// carries them (POST /v1/check, policy test cases).
			if args, ok := in.Context["arguments"].(map[string]any); ok {
				raw, present = ArgumentValue(args, k.key[len(ArgumentsKeyPrefix):])
			}
		}
		if list, ok := raw.([]any); ok {
			if !k.holdsList(list, c.deny) {
				return false, k.label
			}
			continue
		}
		if !k.holds(contextValue(raw), present) {
			return false, k.label
		}
	}
	if c.time != nil && !c.time.holds(nowIfZero(in.Time)) {
		return false, "time"
	}
	if len(c.chainRoot) > 0 && !subjectMatches(c.chainRoot, in.root()) {
		return false, "chain.root"
	}
	if len(c.chainIncl) > 0 {
		found := false
		for i := range in.Chain {
			if subjectMatches(c.chainIncl, &in.Chain[i]) {
				found = true
				break
			}
		}
		if !found {
			return false, "chain.includes"
		}
	}
	return true, ""
}

// subjectMatches reports whether any glob matches the agent's id or name.
func subjectMatches(gs globs, s *Subject) bool {
	return gs.Match(s.ID) || (s.Name != "" && gs.Match(s.Name))
}

// holds evaluates one context key. An absent key satisfies only not_matches
// and exists: false, so a deny rule written with not_matches still applies
// when the caller leaves the key out (docs/policies.md).
func (k *compiledContext) holds(v Value, present bool) bool {
	if k.Exists != nil && *k.Exists != present {
		return false
	}
	if !present {
		return k.Equals == nil && k.In == nil && k.matches == nil &&
			k.Lt == nil && k.Lte == nil && k.Gt == nil && k.Gte == nil
	}
	if k.Equals != nil && !v.Equal(*k.Equals) {
		return false
	}
	if k.In != nil {
		found := false
		for _, x := range k.In {
			if v.Equal(x) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	// Glob operators read strings only: a number never matches a pattern,
	// and so always satisfies not_matches (fail closed for deny rules).
	if k.matches != nil && (v.Kind != KindString || !k.matches.Match(v.Str)) {
		return false
	}
	if k.notMatches != nil && v.Kind == KindString && k.notMatches.Match(v.Str) {
		return false
	}
	if k.Lt != nil || k.Lte != nil || k.Gt != nil || k.Gte != nil {
		// Headers and query parameters are text: a number written as text
		// compares as that number, so `query.recipients: {gt: 50}` holds
		// for ?recipients=500.
		n, ok := v.Num, v.Kind == KindNumber
		if v.Kind == KindString {
			n, ok = numericText(v.Str)
		}
		if !ok {
			return false
		}
		if (k.Lt != nil && !(n < *k.Lt)) || (k.Lte != nil && !(n <= *k.Lte)) ||
			(k.Gt != nil && !(n > *k.Gt)) || (k.Gte != nil && !(n >= *k.Gte)) {
			return false
		}
	}
	return true
}

// holdsList evaluates one context key whose value is a list (an argument
// such as `to: [a, b]`) in a rule of the given effect: the operators
// (but exists, which reads the list as a whole) read each element. In an
// allow rule the condition holds when every element holds it — all the
// recipients are ours, none is the rival's; in a deny rule when some
// element does — the one bad recipient among good ones is caught, whether
// the rule says matches: "*@rival" or not_matches: "*@ours". Either way a
// list cannot pass a rule that its worst element fails. An empty list is
// read as an absent value.
func (k *compiledContext) holdsList(list []any, deny bool) bool {
	if k.Exists != nil && !*k.Exists {
		return false
	}
	el := *k
	el.Exists = nil
	if len(list) == 0 {
		return el.holds(Value{}, false)
	}
	for _, x := range list {
		if el.holds(contextValue(x), true) == deny {
			return deny // some element holds (deny) or fails (allow)
		}
	}
	return !deny
}

// Equal compares two values: same kind and same content; numbers by value.
func (v Value) Equal(o Value) bool {
	if v.Kind != o.Kind {
		return false
	}
	switch v.Kind {
	case KindNull:
		return true
	case KindString:
		return v.Str == o.Str
	case KindNumber:
		return v.Num == o.Num
	case KindBool:
		return v.Bool == o.Bool
	}
	return false
}

// contextValue classifies a value decoded from JSON (or built by Go code).
func contextValue(x any) Value {
	switch t := x.(type) {
	case nil:
		return Value{Kind: KindNull}
	case string:
		return Value{Kind: KindString, Str: t}
	case bool:
		return Value{Kind: KindBool, Bool: t}
	case float64:
		return number(t)
	case float32:
		return number(float64(t))
	case int:
		return number(float64(t))
	case int64:
		return number(float64(t))
	case int32:
		return number(float64(t))
	case uint64:
		return number(float64(t))
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return Value{Kind: KindOther}
		}
		return number(f)
	}
	return Value{Kind: KindOther}
}

// numericText reads s as a number in JSON's grammar (no sign but '-', no
// hex, no Inf or NaN, no spaces): what a reader of the policy takes for a
// number, and nothing a parser would read more leniently than another.
func numericText(s string) (float64, bool) {
	i := 0
	digits := func() int {
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	if n := digits(); n == 0 || n > 1 && s[i-n] == '0' {
		return 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return 0, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, false
		}
	}
	if i != len(s) || len(s) > 64 {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func number(f float64) Value {
	if math.IsNaN(f) {
		return Value{Kind: KindOther} // NaN equals nothing and orders with nothing
	}
	return Value{Kind: KindNumber, Num: f}
}

// holds tests an instant against the window and days, read in the zone. A
// window that wraps past midnight belongs to the day it starts: with
// `between: 22:00-06:00, days: [fri]`, Saturday 01:00 is inside (Friday
// night's shift) and Friday 01:00 is not.
func (t *compiledTime) holds(at time.Time) bool {
	local := at.In(t.loc)
	m := local.Hour()*60 + local.Minute()
	day := local.Weekday()
	if t.start != t.end {
		switch {
		case t.start < t.end && (m < t.start || m >= t.end):
			return false
		case t.start > t.end && m < t.start && m >= t.end:
			return false
		case t.start > t.end && m < t.end:
			day = (day + 6) % 7 // the early-morning part of yesterday's window
		}
	}
	return t.days == 0 || t.days&(1<<day) != 0
}
