package policy

import (
	"fmt"
	"strings"

	"github.com/meshguard/meshguard/trust"
)

// chainShape runs the delegation checks that look only at who is in the chain,
// in the order of docs/policies.md#delegation: every delegating agent active,
// nobody twice (ids compared, the actor included), nobody untrusted, at most
// MaxDelegation delegating agents.
func chainShape(in *Input) (Decision, bool) {
	for i := range in.Chain {
		if u := &in.Chain[i]; !u.Active {
			return deny(ReasonDelegationRevoked, fmt.Sprintf("agent %q in the delegation chain is revoked", u.Label())), true
		}
	}
	if dup := repeated(in.Chain, &in.Agent); dup != nil {
		return deny(ReasonDelegationCycle, fmt.Sprintf("agent %q appears twice in the delegation chain", dup.Label())), true
	}
	for i := range in.Chain {
		if u := &in.Chain[i]; u.Tier == trust.Untrusted {
			return deny(ReasonDelegationUntrusted, fmt.Sprintf("agent %q in the delegation chain is untrusted; untrusted agents cannot delegate", u.Label())), true
		}
	}
	if len(in.Chain) > MaxDelegation {
		return deny(ReasonDelegationDepth, fmt.Sprintf("the delegation chain has %d delegating agents; at most %d are allowed", len(in.Chain), MaxDelegation)), true
	}
	return Decision{}, false
}

// repeated returns the first agent whose id occurs twice in chain+actor.
func repeated(chain []Subject, actor *Subject) *Subject {
	at := func(i int) *Subject {
		if i == len(chain) {
			return actor
		}
		return &chain[i]
	}
	n := len(chain) + 1
	if n <= 8 {
		for i := 1; i < n; i++ {
			for j := 0; j < i; j++ {
				if at(i).ID == at(j).ID {
					return at(i)
				}
			}
		}
		return nil
	}
	seen := make(map[string]bool, n) // long (hostile) chains: stay linear
	for i := 0; i < n; i++ {
		if seen[at(i).ID] {
			return at(i)
		}
		seen[at(i).ID] = true
	}
	return nil
}

// delegationChecks runs the delegation checks that need policy, after the
// actor's own policies allowed the action: every delegating agent is itself
// allowed the action; each is covered by a policy with a delegation block;
// the hand-offs from each to the actor are within the smallest maxDepth of
// those blocks; the action is inside every ceiling; the action is inside
// the token's scope.
func (s *Set) delegationChecks(in *Input, ex *Explanation) (Decision, bool) {
	for i := range in.Chain {
		u := &in.Chain[i]
		if d := s.decide(in, u, in.Chain[:i], nil); !d.Allowed() {
			msg := fmt.Sprintf("delegating agent %q may not %s itself (%s: %s)", u.Label(), in.Action, d.Reason, d.Message)
			ex.step(ReasonDelegationMemberDenied, false, msg)
			return Decision{Effect: Deny, Reason: ReasonDelegationMemberDenied, Message: msg, Policy: d.Policy, Rule: d.Rule}, true
		}
	}
	ex.step("members", true, "every delegating agent is itself allowed "+in.Action)

	if d, failed := s.grants(in.Chain, len(in.Chain), in.Action, true); failed {
		ex.step(d.Reason, false, d.Message)
		return d, true
	}
	ex.step("grants", true, "a delegation block covers every delegating agent; depth and ceilings hold")

	if in.Scope != nil {
		if !anyMatch(in.Scope, in.Action) {
			msg := fmt.Sprintf("action %q is outside the delegation token's scope [%s]", in.Action, strings.Join(in.Scope, ", "))
			ex.step(ReasonDelegationScope, false, msg)
			return deny(ReasonDelegationScope, msg), true
		}
		ex.step("scope", true, "the action is inside the delegation token's scope")
	}
	return Decision{}, false
}

// grants checks, for every delegating agent U in chain (the agent at
// position n receives the task), the delegation blocks of the policies
// covering U: at least one exists, the hand-offs from U to position n are at
// most their smallest maxDepth, and, when ceilings is set, the action is
// inside each of their permissionCeilings. Failures are reported in that
// order across the whole chain.
func (s *Set) grants(chain []Subject, n int, action string, ceilings bool) (Decision, bool) {
	type verdict struct {
		permitted   bool
		depth       int    // smallest maxDepth
		depthPolicy string // the policy that sets it
		ceilingFail string // first policy whose ceiling excludes the action
	}
	var buf [MaxDelegation + 1]verdict
	vs := buf[:0]
	var coverBuf [4]uint64
	cover := s.scratch(&coverBuf)
	for i := range chain {
		clear(cover)
		s.cover(cover, &chain[i])
		v := verdict{depth: MaxDelegation + 1}
		for p := cover.first(s.delegates); p >= 0; p = cover.next(p+1, s.delegates) {
			cp := s.policies[p]
			v.permitted = true
			if cp.Delegation.MaxDepth < v.depth {
				v.depth, v.depthPolicy = cp.Delegation.MaxDepth, cp.Name
			}
			if ceilings && v.ceilingFail == "" && cp.ceiling != nil && !cp.ceiling.Match(action) {
				v.ceilingFail = cp.Name
			}
		}
		vs = append(vs, v)
	}
	for i, v := range vs {
		if !v.permitted {
			return deny(ReasonDelegationNotPermitted, fmt.Sprintf(
				"agent %q may not delegate: no policy covering it has a delegation block (add `delegation: {maxDepth: N}` to a policy that covers it)",
				chain[i].Label())), true
		}
	}
	for i, v := range vs {
		if hops := n - i; hops > v.depth {
			return Decision{Effect: Deny, Reason: ReasonDelegationDepth, Policy: v.depthPolicy, Message: fmt.Sprintf(
				"the task is %d hand-offs from agent %q, but policy %q allows it at most %d (delegation.maxDepth)",
				hops, chain[i].Label(), v.depthPolicy, v.depth)}, true
		}
	}
	for i, v := range vs {
		if v.ceilingFail != "" {
			return Decision{Effect: Deny, Reason: ReasonDelegationCeiling, Policy: v.ceilingFail, Message: fmt.Sprintf(
				"action %q is outside the permission ceiling of policy %q, which covers delegating agent %q",
				action, v.ceilingFail, chain[i].Label())}, true
		}
	}
	return Decision{}, false
}

// HandOff applies the hand-on rule (docs/policies.md#delegation) before a
// request from agent `from` (which itself acts with the delegators in chain)
// reaches another agent `to`: the chain with `from` appended, and `to` as the
// new actor, must pass the revoked, repeat, untrusted, not-permitted and depth
// checks. The ceiling and member checks wait until `to` actually acts. It
// returns an allow decision when the hand-off may happen.
func (s *Set) HandOff(chain []Subject, from, to Subject) Decision {
	next := make([]Subject, 0, len(chain)+1)
	next = append(append(next, chain...), from)
	in := &Input{Agent: to, Chain: next}
	d, failed := chainShape(in)
	if !failed {
		d, failed = s.grants(next, len(next), "", false)
	}
	if !failed {
		d = Decision{Effect: Allow, Reason: ReasonRuleAllow, Message: fmt.Sprintf("agent %q may hand the task to agent %q", from.Label(), to.Label())}
	}
	d.Tier, d.Revision = from.Tier, s.revision
	return d
}

// anyMatch matches s against patterns without compiling them (token scopes
// arrive per request).
func anyMatch(patterns []string, s string) bool {
	for _, p := range patterns {
		if Match(p, s) {
			return true
		}
	}
	return false
}
