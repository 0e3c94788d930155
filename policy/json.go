package policy

import "encoding/json"

// The JSON form of a policy (GET /admin/policies/{name}, the wasm filter's
// configuration) uses the YAML keys
// and shapes, so it is itself a valid policy document (JSON is YAML):
// a context condition is a literal or an object of operators, as written.

type policyDoc struct {
	Name          string      `json:"name"`
	Version       string      `json:"version,omitempty"`
	Description   string      `json:"description,omitempty"`
	AppliesTo     *AppliesTo  `json:"appliesTo,omitempty"`
	Rules         []ruleDoc   `json:"rules"`
	DefaultEffect Effect      `json:"defaultEffect"`
	Delegation    *Delegation `json:"delegation,omitempty"`
	RateLimits    *RateLimits `json:"rateLimits,omitempty"`
	Mode          string      `json:"mode,omitempty"`
}

type ruleDoc struct {
	Name       string         `json:"name"`
	Effect     Effect         `json:"effect"`
	Actions    []string       `json:"actions"`
	Conditions *conditionsDoc `json:"conditions,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Approvers  []string       `json:"approvers,omitempty"`
	TTL        string         `json:"ttl,omitempty"`
}

type conditionsDoc struct {
	Resource  *ResourceCondition `json:"resource,omitempty"`
	Context   map[string]any     `json:"context,omitempty"`
	Time      *TimeCondition     `json:"time,omitempty"`
	Delegated *bool              `json:"delegated,omitempty"`
	Chain     *ChainCondition    `json:"chain,omitempty"`
	RateLimit *RuleRateLimit     `json:"rateLimit,omitempty"`
}

// JSON encodes p in its JSON form, which Parse reads back as the same
// policy: the admin API serves it, and the wasm filter's configuration
// carries the policy set in it.
func (p *Policy) JSON() (json.RawMessage, error) {
	d := policyDoc{
		Name: p.Name, Version: p.Version, Description: p.Description, DefaultEffect: p.DefaultEffect,
		Delegation: p.Delegation, RateLimits: p.RateLimits, Mode: p.Mode, Rules: make([]ruleDoc, len(p.Rules)),
	}
	if !p.AppliesTo.Empty() {
		at := p.AppliesTo
		d.AppliesTo = &at
	}
	for i, r := range p.Rules {
		d.Rules[i] = ruleDoc{Name: r.Name, Effect: r.Effect, Actions: r.Actions, Reason: r.Reason, Approvers: r.Approvers}
		if r.TTL > 0 {
			d.Rules[i].TTL = r.TTL.String()
		}
		if c := r.Conditions; c != nil {
			cd := &conditionsDoc{Resource: c.Resource, Time: c.Time, Delegated: c.Delegated, Chain: c.Chain, RateLimit: c.RateLimit}
			if len(c.Context) > 0 {
				cd.Context = make(map[string]any, len(c.Context))
				for k, cc := range c.Context {
					cd.Context[k] = contextConditionJSON(*cc)
				}
			}
			d.Rules[i].Conditions = cd
		}
	}
	return json.Marshal(d)
}

// contextConditionJSON is a literal for equality, else the operators set.
func contextConditionJSON(c ContextCondition) any {
	if c.Equals != nil {
		return valueJSON(*c.Equals)
	}
	ops := map[string]any{}
	if c.In != nil {
		in := make([]any, len(c.In))
		for i, v := range c.In {
			in[i] = valueJSON(v)
		}
		ops["in"] = in
	}
	for name, s := range map[string]*string{"matches": c.Matches, "not_matches": c.NotMatches} {
		if s != nil {
			ops[name] = *s
		}
	}
	for name, f := range map[string]*float64{"lt": c.Lt, "lte": c.Lte, "gt": c.Gt, "gte": c.Gte} {
		if f != nil {
			ops[name] = *f
		}
	}
	if c.Exists != nil {
		ops["exists"] = *c.Exists
	}
	return ops
}

func valueJSON(v Value) any {
	switch v.Kind {
	case KindString:
		return v.Str
	case KindNumber:
		return v.Num
	case KindBool:
		return v.Bool
	}
	return nil
}
