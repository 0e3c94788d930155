package policy

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var conditionKeys = []string{"resource", "context", "time", "delegated", "chain", "rateLimit"}

func (d *decoder) conditions(n *yaml.Node, field string) *Conditions {
	c := &Conditions{}
	if !d.fields(n, field, conditionKeys, func(k string, v *yaml.Node) {
		f := join(field, k)
		switch k {
		case "resource":
			c.Resource = d.resourceCond(v, f)
		case "context":
			c.Context = d.contextConds(v, f)
		case "time":
			c.Time = d.timeCond(v, f)
		case "delegated":
			if b, ok := d.boolean(v, f); ok {
				c.Delegated = &b
			}
		case "chain":
			c.Chain = d.chainCond(v, f)
		case "rateLimit":
			rl := &RuleRateLimit{}
			d.fields(v, f, []string{"requestsPerMinute"}, func(_ string, v *yaml.Node) {
				rl.RequestsPerMinute, _ = d.integer(v, join(f, "requestsPerMinute"), 1, maxRate)
			})
			if rl.RequestsPerMinute == 0 && v.Kind == yaml.MappingNode && len(v.Content) == 0 {
				d.fail(v, f, "empty (expected requestsPerMinute)")
			}
			c.RateLimit = rl
		}
	}) {
		return nil
	}
	return c
}

func (d *decoder) resourceCond(n *yaml.Node, field string) *ResourceCondition {
	r := &ResourceCondition{}
	d.fields(n, field, []string{"matches", "startsWith", "contains"}, func(k string, v *yaml.Node) {
		f := join(field, k)
		switch k {
		case "matches":
			r.Matches = d.patterns(v, f, false, true)
		case "startsWith":
			r.StartsWith = d.bounded(v, f)
		case "contains":
			r.Contains = d.bounded(v, f)
		}
	})
	if n.Kind == yaml.MappingNode && len(n.Content) == 0 {
		d.fail(n, field, "empty (expected matches, startsWith or contains)")
	}
	return r
}

// bounded decodes a non-empty string of at most MaxPatternLen bytes.
func (d *decoder) bounded(n *yaml.Node, field string) string {
	s, ok := d.str(n, field)
	if ok && (s == "" || len(s) > MaxPatternLen) {
		d.fail(n, field, "expected a non-empty string of at most %d bytes", MaxPatternLen)
	}
	return s
}

var contextOps = []string{"in", "matches", "not_matches", "lt", "lte", "gt", "gte", "exists"}

func (d *decoder) contextConds(n *yaml.Node, field string) map[string]*ContextCondition {
	out := map[string]*ContextCondition{}
	d.fields(n, field, nil, func(key string, v *yaml.Node) {
		f := join(field, key)
		if key == "" || len(key) > MaxPatternLen {
			d.fail(v, field, "context keys must be non-empty and at most %d bytes", MaxPatternLen)
			return
		}
		if msg := checkContextKey(key); msg != "" {
			d.fail(v, f, "%s", msg)
			return
		}
		var c ContextCondition
		switch v.Kind {
		case yaml.ScalarNode:
			if val, ok := d.scalarValue(v, f); ok {
				c.Equals = &val
			}
		case yaml.MappingNode:
			if len(v.Content) == 0 {
				d.fail(v, f, "empty (expected a literal or one of the operators %s)", strings.Join(contextOps, ", "))
			}
			d.fields(v, f, contextOps, func(op string, ov *yaml.Node) {
				d.contextOp(&c, op, ov, join(f, op))
			})
			// An absent key satisfies only not_matches and exists: false,
			// so exists: false with any other test can never hold.
			if c.Exists != nil && !*c.Exists && (c.In != nil || c.Matches != nil || c.Lt != nil || c.Lte != nil || c.Gt != nil || c.Gte != nil) {
				d.fail(v, f, "exists: false cannot be combined with in, matches, lt, lte, gt or gte (the condition could never hold)")
			}
		default:
			d.fail(v, f, "expected a literal or a mapping of operators (%s), got %s; for a list of values use {in: [...]}", strings.Join(contextOps, ", "), kindName(v))
		}
		out[key] = &c
	})
	return out
}

func (d *decoder) contextOp(c *ContextCondition, op string, v *yaml.Node, f string) {
	num := func() *float64 {
		if x, ok := d.number(v, f); ok {
			return &x
		}
		return nil
	}
	switch op {
	case "in":
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			d.fail(v, f, "expected a non-empty list of literals, got %s", kindName(v))
			return
		}
		for i, e := range v.Content {
			if val, ok := d.scalarValue(e, index(f, i)); ok {
				c.In = append(c.In, val)
			}
		}
	case "matches", "not_matches":
		s := d.bounded(v, f)
		if op == "matches" {
			c.Matches = &s
		} else {
			c.NotMatches = &s
		}
	case "lt":
		c.Lt = num()
	case "lte":
		c.Lte = num()
	case "gt":
		c.Gt = num()
	case "gte":
		c.Gte = num()
	case "exists":
		if b, ok := d.boolean(v, f); ok {
			c.Exists = &b
		}
	}
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} // time.Weekday order

func (d *decoder) timeCond(n *yaml.Node, field string) *TimeCondition {
	t := &TimeCondition{}
	d.fields(n, field, []string{"between", "timezone", "days"}, func(k string, v *yaml.Node) {
		f := join(field, k)
		switch k {
		case "between":
			t.Between, _ = d.str(v, f)
			if _, _, err := parseWindow(t.Between); err != nil {
				d.fail(v, f, "%q: %v", cut(t.Between), err)
			}
		case "timezone":
			t.Timezone, _ = d.str(v, f)
			if _, err := loadLocation(t.Timezone); err != nil {
				d.fail(v, f, "%v", err)
			}
		case "days":
			t.Days, _ = d.strList(v, f, false)
			seen := map[string]bool{}
			for i, day := range t.Days {
				at := v.Content[i]
				switch {
				case !contains(dayNames, day):
					d.fail(at, index(f, i), "%q is not a day (expected one of mon, tue, wed, thu, fri, sat, sun)", cut(day))
				case seen[day]:
					d.fail(at, index(f, i), "day %q listed twice", cut(day))
				}
				seen[day] = true
			}
			if len(t.Days) == 0 && v.Kind == yaml.SequenceNode {
				d.fail(v, f, "empty list (leave days out to mean every day)")
			}
		}
	})
	if n.Kind == yaml.MappingNode && t.Between == "" && len(t.Days) == 0 {
		d.fail(n, field, "needs between and/or days")
	}
	return t
}

// parseWindow reads "HH:MM-HH:MM" into minutes since midnight. The start is
// inclusive and the end exclusive; the end may be 24:00; start after end
// wraps past midnight.
func parseWindow(s string) (start, end int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("expected HH:MM-HH:MM, e.g. 09:00-18:00")
	}
	if start, err = parseClock(a, false); err != nil {
		return 0, 0, err
	}
	if end, err = parseClock(b, true); err != nil {
		return 0, 0, err
	}
	if start == end || (start == 0 && end == 24*60) {
		return 0, 0, fmt.Errorf("window is empty or the whole day (leave between out to mean all day)")
	}
	return start, end, nil
}

func parseClock(s string, allow24 bool) (int, error) {
	if len(s) != 5 || s[2] != ':' || !isDigits(s[:2]) || !isDigits(s[3:]) {
		return 0, fmt.Errorf("%q: expected a time HH:MM (24-hour clock)", cut(s))
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 || h > 24 || (h == 24 && (m != 0 || !allow24)) {
		return 0, fmt.Errorf("%q: expected a time from 00:00 to 23:59 (24:00 allowed as an end)", s)
	}
	return h*60 + m, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// loadLocation resolves an IANA timezone; "" means UTC. Local is refused:
// a policy must mean the same thing on every replica.
func loadLocation(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("timezone \"Local\" depends on the machine; name an IANA zone such as Europe/Berlin")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown timezone %q (expected an IANA name such as Europe/Berlin or UTC)", cut(name))
	}
	return loc, nil
}

func (d *decoder) chainCond(n *yaml.Node, field string) *ChainCondition {
	c := &ChainCondition{}
	d.fields(n, field, []string{"root", "includes"}, func(k string, v *yaml.Node) {
		f := join(field, k)
		switch k {
		case "root":
			c.Root = d.patterns(v, f, false, true)
		case "includes":
			c.Includes = d.patterns(v, f, false, true)
		}
	})
	if n.Kind == yaml.MappingNode && len(c.Root) == 0 && len(c.Includes) == 0 {
		d.fail(n, field, "needs root and/or includes")
	}
	return c
}
