package policy

import (
	"fmt"
	"github.com/meshguard/meshguard/api"
	"slices"
	"strings"
)

// Explanation is the explain trace of one decision: for every policy,
// whether it covers the agent and why, and what each of its rules did; then
// each delegation check with its outcome. Its JSON is the API's
// (api.Explanation); it is a type of its own for the step method.
type Explanation api.Explanation

// PolicyExplanation is one policy's part in a decision.
type PolicyExplanation = api.PolicyExplanation

// RuleExplanation says what happened to one rule.
type RuleExplanation = api.RuleExplanation

// Rule results in an explanation.
const (
	RuleMatched       = "matched"
	RuleActionMissed  = "action not matched"
	RuleNotReached    = "not reached (an earlier rule matched)"
	ruleCondFailedPfx = "condition failed: "
)

// Step is one delegation check.
type Step = api.Step

// step records a delegation check; a nil Explanation records nothing, so
// callers need not test for explain mode.
func (ex *Explanation) step(check string, passed bool, detail string) {
	if ex != nil {
		ex.Delegation = append(ex.Delegation, Step{Check: check, Passed: passed, Detail: detail})
	}
}

// scanAll is the explaining twin of scanIndexed: it walks every policy and
// rule in order and says what each did. Both feed the same outcome and
// combine, and a test checks that they always agree.
func (s *Set) scanAll(in *Input, cover, matched bitset, o *outcome, ex *Explanation) {
	for pi, p := range s.policies {
		pe := PolicyExplanation{Name: p.Name, Covered: cover.has(pi), Coverage: coverage(p.Policy, &in.Agent)}
		if !pe.Covered {
			ex.Policies = append(ex.Policies, pe)
			continue
		}
		for ri := range p.rules {
			r := &p.rules[ri]
			re := RuleExplanation{Name: r.Name}
			switch {
			case matched.has(pi):
				re.Result = RuleNotReached
			case !r.actions.Match(in.Action):
				re.Result = RuleActionMissed
			default:
				if ok, failed := r.cond.holdsOrTrue(in); !ok {
					re.Result = ruleCondFailedPfx + failed
					break
				}
				re.Result = RuleMatched
				matched.set(pi)
				o.record(pi, r)
				pe.Effect = r.Effect
			}
			pe.Rules = append(pe.Rules, re)
		}
		if !matched.has(pi) {
			pe.Effect, pe.Default = p.DefaultEffect, true
		}
		ex.Policies = append(ex.Policies, pe)
	}
}

// holdsOrTrue treats a rule without conditions as matching.
func (c *compiledConditions) holdsOrTrue(in *Input) (bool, string) {
	if c == nil {
		return true, ""
	}
	return c.holds(in)
}

// coverage explains why p does or does not cover agent a.
func coverage(p *Policy, a *Subject) string {
	at := p.AppliesTo
	if at.Empty() {
		return "covers every agent (no appliesTo)"
	}
	if slices.Contains(at.TrustTiers, a.Tier) {
		return fmt.Sprintf("trust tier %s is in appliesTo.trustTiers", a.Tier)
	}
	for _, t := range a.Tags {
		if slices.Contains(at.Tags, t) {
			return fmt.Sprintf("tag %q is in appliesTo.tags", t)
		}
	}
	if slices.Contains(at.AgentIDs, a.ID) {
		return fmt.Sprintf("id %q is in appliesTo.agentIds", a.ID)
	}
	if a.Name != "" && slices.Contains(at.AgentIDs, a.Name) {
		return fmt.Sprintf("name %q is in appliesTo.agentIds", a.Name)
	}
	var sel []string
	if len(at.TrustTiers) > 0 {
		names := make([]string, len(at.TrustTiers))
		for i, t := range at.TrustTiers {
			names[i] = t.String()
		}
		sel = append(sel, "trustTiers ["+strings.Join(names, ", ")+"]")
	}
	if len(at.Tags) > 0 {
		sel = append(sel, "tags ["+strings.Join(at.Tags, ", ")+"]")
	}
	if len(at.AgentIDs) > 0 {
		sel = append(sel, "agentIds ["+strings.Join(at.AgentIDs, ", ")+"]")
	}
	return "not covered: the agent matches none of " + strings.Join(sel, ", ")
}
