package policy

import "fmt"

// Evaluate decides one request: the policies covering the agent,
// then the delegation checks over in.Chain in the order docs/policies.md
// lists them, the first failure reported. It never fails: bad input was
// refused when the set was compiled, and anything unknown denies.
func (s *Set) Evaluate(in *Input) Decision {
	var ex *Explanation
	if in.Explain {
		ex = &Explanation{}
	}
	d := s.evaluate(in, ex)
	d.Tier = in.Agent.Tier
	d.Revision = s.revision
	d.Explain = ex
	if d.Effect == Deny {
		// An approve decision keeps its limits: the engine checks them
		// before asking for an approval, so none is asked for a request
		// the limits would refuse anyway.
		d.Limits = nil
	}
	return d
}

func (s *Set) evaluate(in *Input, ex *Explanation) Decision {
	if !in.Agent.Active {
		return deny(ReasonAgentRevoked, fmt.Sprintf("agent %q is revoked", in.Agent.Label()))
	}
	if len(in.Chain) > 0 {
		if d, failed := chainShape(in); failed {
			ex.step(d.Reason, false, d.Message)
			return d
		}
		ex.step("chain", true, "every delegating agent is active, trusted and listed once; the chain is within the 5-agent cap")
	}
	d := s.decide(in, &in.Agent, in.Chain, ex)
	// An approve decision runs the delegation checks too: the actor's
	// approval covers the chain's request, but every earlier member must be
	// allowed outright (delegationChecks refuses a member's approve).
	if d.Effect == Deny || (len(in.Chain) == 0 && in.Scope == nil) {
		return d
	}
	if fail, failed := s.delegationChecks(in, ex); failed {
		return fail
	}
	return d
}

// decide applies the policies covering agent a to the action, with chain as the
// agents that delegated to a. It is the whole decision rule of docs/policies.md
// ("How a decision is made", steps 1–3).
func (s *Set) decide(in *Input, a *Subject, chain []Subject, ex *Explanation) Decision {
	var coverBuf, matchBuf [4]uint64
	cover, matched := s.scratch(&coverBuf), s.scratch(&matchBuf)
	s.cover(cover, a)
	sub := in
	if a != &in.Agent {
		// Evaluate as if a performed the action with the chain before it.
		cp := *in
		cp.Agent, cp.Chain = *a, chain
		sub = &cp
	}
	var o outcome
	if ex != nil {
		s.scanAll(sub, cover, matched, &o, ex)
	} else {
		s.scanIndexed(sub, cover, matched, &o)
	}
	return s.combine(cover, matched, &o)
}

// outcome collects, while rules are scanned in evaluation order, what the
// combination rule needs: the first policy whose first match denies, the
// first whose first match asks for approval, the first whose first match
// allows, and the rate limits of matched allow and approve rules.
type outcome struct {
	deny, approve, allow *compiledRule
	denyP                int
	approveP             int
	allowP               int
	limits               []Limit
	haveDeny             bool
	haveApprove          bool
	haveAllow            bool
}

func (o *outcome) record(pi int, r *compiledRule) {
	switch {
	case r.Effect == Deny:
		if !o.haveDeny {
			o.deny, o.denyP, o.haveDeny = r, pi, true
		}
		return
	case r.Effect == Approve && !o.haveApprove:
		o.approve, o.approveP, o.haveApprove = r, pi, true
	case r.Effect == Allow && !o.haveAllow:
		o.allow, o.allowP, o.haveAllow = r, pi, true
	}
	if r.Conditions != nil && r.Conditions.RateLimit != nil {
		o.limits = append(o.limits, Limit{Key: r.limitKey, PerMinute: r.Conditions.RateLimit.RequestsPerMinute})
	}
}

// scanIndexed visits only the rules whose action patterns match, via the
// action index, in evaluation order. A policy is done at its first match.
func (s *Set) scanIndexed(in *Input, cover, matched bitset, o *outcome) {
	s.actions.candidates(in.Action, func(ref ruleRef) bool {
		pi := int(ref.policy)
		if !cover.has(pi) || matched.has(pi) {
			return true
		}
		r := &s.policies[pi].rules[ref.rule]
		if ok, _ := r.cond.holdsOrTrue(in); !ok {
			return true
		}
		matched.set(pi)
		o.record(pi, r)
		// Refs come in policy-name order, so the first deny seen is the
		// one to report, and a deny cannot be overturned.
		return !o.haveDeny
	})
}

// combine is step 3 of docs/policies.md's "How a decision is made":
// across policies.
func (s *Set) combine(cover, matched bitset, o *outcome) Decision {
	switch {
	case o.haveDeny:
		return Decision{Effect: Deny, Reason: ReasonRuleDeny, Message: o.deny.msg,
			Policy: s.policies[o.denyP].Name, Rule: o.deny.Name}
	case o.haveApprove:
		// Deny beats approve beats allow: a person is asked only about a
		// request no policy denies.
		d := Decision{Effect: Approve, Reason: ReasonApprovalRequired, Message: o.approve.msg,
			Policy: s.policies[o.approveP].Name, Rule: o.approve.Name, ApproveRule: o.approve.Rule}
		d.Limits = s.policyLimits(cover, o.limits)
		return d
	case o.haveAllow:
		d := Decision{Effect: Allow, Reason: ReasonRuleAllow, Message: o.allow.msg,
			Policy: s.policies[o.allowP].Name, Rule: o.allow.Name}
		d.Limits = s.policyLimits(cover, o.limits)
		return d
	}
	first := cover.first(nil)
	if first < 0 {
		return deny(ReasonNoPolicy, "no policy covers this agent")
	}
	// Every covering policy fell through to its default. Deny if any of
	// those defaults is deny; report the first such policy.
	if p := cover.first(s.defaultDeny); p >= 0 {
		return Decision{Effect: Deny, Reason: ReasonNoMatchingRule, Message: s.policies[p].defaultMsg, Policy: s.policies[p].Name}
	}
	d := Decision{Effect: Allow, Reason: ReasonDefaultAllow, Message: s.policies[first].defaultMsg, Policy: s.policies[first].Name}
	d.Limits = s.policyLimits(cover, o.limits)
	return d
}

// policyLimits appends the rateLimits of every covering policy.
func (s *Set) policyLimits(cover bitset, limits []Limit) []Limit {
	for p := cover.first(s.limited); p >= 0; p = cover.next(p+1, s.limited) {
		rl := s.policies[p].RateLimits
		limits = append(limits, Limit{Key: s.policies[p].Name, PerMinute: rl.RequestsPerMinute, PerHour: rl.RequestsPerHour})
	}
	return limits
}

func deny(reason, msg string) Decision {
	return Decision{Effect: Deny, Reason: reason, Message: msg}
}
