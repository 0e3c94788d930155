package policy

// Shadow policies (mode: shadow) are evaluated but never change a
// decision. The set's Evaluate decides with the enforcing policies alone,
// exactly as if the shadow ones were absent. The shadow answer is what the
// set would decide if its shadow policies were enforcing — the candidate
// set a team is about to promote — so "the shadow answer differs" means
// "promoting the shadow policies would change this decision".

// ShadowDecision is the shadow answer for a request, when it differs from
// the enforced one.
type ShadowDecision struct {
	Effect Effect
	Reason string // a Reason* code
	// Policy is the shadow policy the difference is put down to: the one
	// that decided, or else the first shadow policy covering the agent
	// (or, for a delegation check, a member of its chain).
	Policy string
	// Rule is the deciding rule of Policy; "" when Policy's default or a
	// delegation check decided.
	Rule string
}

// shadowSet is the candidate set (enforcing ∪ shadow, all enforcing) and
// which of its policies are shadow ones.
type shadowSet struct {
	cand   *Set
	shadow bitset // indexes into cand.policies
}

func newShadowSet(cand *Set) *shadowSet {
	sh := &shadowSet{cand: cand, shadow: newBitset(len(cand.policies))}
	for i, p := range cand.policies {
		if p.Shadow() {
			sh.shadow.set(i)
		}
	}
	return sh
}

// HasShadow reports whether any policy of the set is in shadow mode.
func (s *Set) HasShadow() bool { return s.shadow != nil }

// Candidate is the set with its shadow policies enforcing (s itself when
// it has none): what promoting them would enforce. policy test decides
// with it.
func (s *Set) Candidate() *Set {
	if s.shadow == nil {
		return s
	}
	return s.shadow.cand
}

// Shadow returns the shadow answer for in when it differs from enforced
// (the set's own Evaluate of in): its effect differs, allow → approve
// included. It costs nothing without shadow policies, and one more
// evaluation only for a request whose agent, or a member of whose chain,
// a shadow policy covers.
func (s *Set) Shadow(in *Input, enforced *Decision) (ShadowDecision, bool) {
	if s.shadow == nil {
		return ShadowDecision{}, false
	}
	return s.shadow.decide(in, enforced)
}

func (sh *shadowSet) decide(in *Input, enforced *Decision) (ShadowDecision, bool) {
	covering := sh.covering(&in.Agent)
	for i := 0; covering < 0 && i < len(in.Chain); i++ {
		covering = sh.covering(&in.Chain[i])
	}
	if covering < 0 {
		return ShadowDecision{}, false
	}
	sub := in
	if in.Explain {
		cp := *in
		cp.Explain = false
		sub = &cp
	}
	d := sh.cand.Evaluate(sub)
	if d.Effect == enforced.Effect {
		return ShadowDecision{}, false
	}
	out := ShadowDecision{Effect: d.Effect, Reason: d.Reason, Policy: sh.cand.policies[covering].Name}
	if p, ok := sh.cand.Policy(d.Policy); ok && p.Shadow() {
		out.Policy, out.Rule = d.Policy, d.Rule
	}
	return out, true
}

// covering returns the first shadow policy covering a, or -1.
func (sh *shadowSet) covering(a *Subject) int {
	var buf [4]uint64
	cover := sh.cand.scratch(&buf)
	sh.cand.cover(cover, a)
	return cover.first(sh.shadow)
}
