package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshguard/meshguard/trust"
)

// Set is a compiled, immutable set of policies: safe for concurrent use, and
// swapped whole on reload so no request sees half of an old and half of a new
// set.
type Set struct {
	policies []*compiledPolicy // in name order; index = bit in every bitset
	revision string
	words    int // len of every bitset

	// Coverage index: the union of the sets an agent's tier, tags, id and
	// name select, plus the policies with no appliesTo.
	all     bitset
	byTier  [trust.Privileged + 1]bitset
	byTag   map[string]bitset
	byAgent map[string]bitset

	defaultDeny bitset // policies whose defaultEffect is deny
	delegates   bitset // policies with a delegation block
	limited     bitset // policies with rateLimits

	actions actionIndex
	// requestKeys: the context keys rules read from the request itself
	// (the shadow policies' too, so a shadow rule reads its values and
	// the audit record keeps them for replay).
	requestKeys []string

	// listed is every policy, shadow ones included, in name order: what
	// the set holds (Policies, Policy, Len). The indexes above hold only
	// the enforcing ones.
	listed []*Policy
	// shadow is nil when no policy is in shadow mode (shadow.go).
	shadow *shadowSet
}

type compiledPolicy struct {
	*Policy
	rules      []compiledRule
	ceiling    globs  // nil: no ceiling
	defaultMsg string // precomputed so the hot path does not format
}

type compiledRule struct {
	*Rule
	actions globs
	cond    *compiledConditions // nil: no conditions
	// Precomputed so the hot path does not format strings: msg is the
	// message of the rule's effect; limitKey is set with a rate limit.
	msg, limitKey string
}

// Compile checks a list of policies as a set (unique names, the size limit)
// and builds the indexes. Policies are copied by reference: callers must not
// modify them afterwards. Shadow policies (mode: shadow) are compiled
// apart: the set decides with the enforcing policies alone (shadow.go).
func Compile(policies []*Policy) (*Set, error) {
	var enforcing []*Policy
	shadows := 0
	var errs ErrorList
	for _, p := range policies {
		switch p.Mode {
		case "", ModeEnforce:
			enforcing = append(enforcing, p)
		case ModeShadow:
			shadows++
		default:
			errs = append(errs, &Error{File: p.Source.File, Line: p.Source.Line, Field: "mode",
				Msg: fmt.Sprintf("%q is not a mode (expected enforce or shadow)", cut(p.Mode))})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if shadows == 0 {
		return compile(policies)
	}
	// The candidate first: it holds every policy, so it reports every
	// problem (duplicate names across modes too) exactly once.
	cand, err := compile(policies)
	if err != nil {
		return nil, err
	}
	s, err := compile(enforcing)
	if err != nil {
		return nil, err
	}
	s.listed, s.revision, s.requestKeys = cand.listed, cand.revision, cand.requestKeys
	s.shadow = newShadowSet(cand)
	return s, nil
}

// compile builds a set deciding with every policy given, whatever its mode.
func compile(policies []*Policy) (*Set, error) {
	sorted := sortedByName(policies)
	var errs ErrorList
	if len(sorted) > MaxPolicies {
		errs = append(errs, &Error{Msg: fmt.Sprintf("%d policies, more than the limit of %d", len(sorted), MaxPolicies)})
		return nil, errs
	}
	if errs = duplicateNames(sorted); len(errs) > 0 {
		return nil, errs
	}

	n := len(sorted)
	s := &Set{
		words:       (n + 63) / 64,
		all:         newBitset(n),
		byTag:       map[string]bitset{},
		byAgent:     map[string]bitset{},
		defaultDeny: newBitset(n),
		delegates:   newBitset(n),
		limited:     newBitset(n),
	}
	for t := range s.byTier {
		s.byTier[t] = newBitset(n)
	}
	var idx indexBuilder
	for pi, p := range sorted {
		cp, err := compilePolicy(p)
		if err != nil {
			errs = append(errs, &Error{File: p.Source.File, Line: p.Source.Line, Msg: err.Error()})
			continue
		}
		s.policies = append(s.policies, cp)
		s.index(pi, p)
		for ri := range cp.rules {
			for _, a := range cp.rules[ri].Actions {
				idx.add(a, ruleRef{policy: int32(pi), rule: int32(ri)})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	s.actions = idx.build()
	s.requestKeys = requestKeys(s.policies)
	s.revision = revision(sorted)
	s.listed = sorted
	return s, nil
}

func sortedByName(policies []*Policy) []*Policy {
	sorted := slices.Clone(policies)
	slices.SortStableFunc(sorted, func(a, b *Policy) int { return strings.Compare(a.Name, b.Name) })
	return sorted
}

// duplicateNames reports every policy whose name an earlier one (in sorted
// order) already has.
func duplicateNames(sorted []*Policy) ErrorList {
	var errs ErrorList
	for i := 1; i < len(sorted); i++ {
		if a, b := sorted[i-1], sorted[i]; a.Name == b.Name {
			errs = append(errs, &Error{File: b.Source.File, Line: b.Source.Line, Field: "name",
				Msg: fmt.Sprintf("duplicate policy name %q (also defined at %s:%d)", b.Name, a.Source.File, a.Source.Line)})
		}
	}
	return errs
}

func (s *Set) index(pi int, p *Policy) {
	at := func(m map[string]bitset, key string) {
		b, ok := m[key]
		if !ok {
			b = make(bitset, s.words)
			m[key] = b
		}
		b.set(pi)
	}
	if p.AppliesTo.Empty() {
		s.all.set(pi)
	}
	for _, t := range p.AppliesTo.TrustTiers {
		s.byTier[t].set(pi)
	}
	for _, tag := range p.AppliesTo.Tags {
		at(s.byTag, tag)
	}
	for _, id := range p.AppliesTo.AgentIDs {
		at(s.byAgent, id)
	}
	if p.DefaultEffect != Allow {
		s.defaultDeny.set(pi)
	}
	if p.Delegation != nil {
		s.delegates.set(pi)
	}
	if p.RateLimits != nil {
		s.limited.set(pi)
	}
}

func compilePolicy(p *Policy) (*compiledPolicy, error) {
	cp := &compiledPolicy{
		Policy:     p,
		rules:      make([]compiledRule, len(p.Rules)),
		defaultMsg: fmt.Sprintf("no rule of policy %q matched and its default is %s", p.Name, p.DefaultEffect),
	}
	if p.Delegation != nil && p.Delegation.PermissionCeiling != nil {
		// Parse refuses an empty ceiling; a Policy built otherwise must not
		// compile to "no ceiling", the widest reading (fail closed).
		if len(p.Delegation.PermissionCeiling) == 0 {
			return nil, fmt.Errorf("delegation.permissionCeiling: %s", msgEmptyCeiling)
		}
		cp.ceiling = compileGlobs(p.Delegation.PermissionCeiling)
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		cr := compiledRule{Rule: r, actions: compileGlobs(r.Actions)}
		if r.Conditions != nil {
			c, err := compileConditions(r.Conditions)
			if err != nil {
				return nil, fmt.Errorf("rules[%d].conditions: %w", i, err)
			}
			// An approve rule reads its conditions as a deny rule does
			// (a list's one bad element, an unknown argument make it
			// apply): when in doubt, a person is asked.
			c.deny = r.Effect != Allow
			cr.cond = c
		}
		// Only the message of the rule's own effect is ever given, and the
		// limit key only with a rate limit: 10k rules kept all four.
		switch r.Effect {
		case Deny:
			cr.msg = r.Reason
			if cr.msg == "" {
				cr.msg = fmt.Sprintf("denied by rule %q of policy %q", r.Name, p.Name)
			}
		case Approve:
			cr.msg = r.Reason
			if cr.msg == "" {
				cr.msg = fmt.Sprintf("rule %q of policy %q needs a person's approval", r.Name, p.Name)
			}
		default:
			cr.msg = fmt.Sprintf("allowed by rule %q of policy %q", r.Name, p.Name)
		}
		if r.Conditions != nil && r.Conditions.RateLimit != nil {
			cr.limitKey = p.Name + "/" + r.Name
		}
		cp.rules[i] = cr
	}
	return cp, nil
}

// revision hashes the canonical JSON of the policies in name order, so the
// same policies give the same revision whatever their files' layout,
// comments or order.
func revision(sorted []*Policy) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, p := range sorted {
		// Policies decoded by Parse always encode; an error here would mean
		// a NaN crept in, which the decoder refuses.
		_ = enc.Encode(p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Revision identifies the policy set: the first 16 hex digits of a SHA-256
// over its canonical form.
func (s *Set) Revision() string { return s.revision }

// Len is the number of policies, shadow ones included.
func (s *Set) Len() int { return len(s.listed) }

// Policies returns the policies in name order, shadow ones included. They
// must not be modified.
func (s *Set) Policies() []*Policy { return slices.Clone(s.listed) }

// Policy returns the named policy, enforcing or shadow.
func (s *Set) Policy(name string) (*Policy, bool) {
	i, ok := slices.BinarySearchFunc(s.listed, name, func(p *Policy, n string) int { return strings.Compare(p.Name, n) })
	if !ok {
		return nil, false
	}
	return s.listed[i], true
}

// cover fills dst with the policies covering agent a.
func (s *Set) cover(dst bitset, a *Subject) {
	copy(dst, s.all)
	if a.Tier.Valid() {
		dst.or(s.byTier[a.Tier])
	}
	for _, t := range a.Tags {
		if b, ok := s.byTag[t]; ok {
			dst.or(b)
		}
	}
	if b, ok := s.byAgent[a.ID]; ok {
		dst.or(b)
	}
	if b, ok := s.byAgent[a.Name]; ok && a.Name != a.ID {
		dst.or(b)
	}
}

// scratch returns a zeroed bitset for this set, on the caller's stack when
// the set is small enough.
func (s *Set) scratch(buf *[4]uint64) bitset {
	if s.words <= len(buf) {
		b := buf[:s.words]
		clear(b)
		return b
	}
	return make(bitset, s.words)
}

// nowIfZero lets callers leave Input.Time unset to mean now.
func nowIfZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
