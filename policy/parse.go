package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/trust"
)

// Limits on policy input (every limit bounded and documented in
// docs/policies.md).
const (
	MaxFileBytes      = 4 << 20 // one policy file
	MaxPolicies       = 10000   // policies in one set
	MaxRulesPerPolicy = 10000
	MaxPatternLen     = 1024 // any action, resource or agent pattern
	MaxDelegation     = 5    // maxDepth bound and the cap on delegating agents
	maxRate           = 10_000_000
	MaxApprovers      = 32          // approvers of one approve rule
	MinApprovalTTL    = time.Minute // an approve rule's ttl, lower bound
	MaxApprovalTTL    = 30 * 24 * time.Hour
)

var policyKeys = []string{"name", "version", "description", "appliesTo", "rules", "defaultEffect", "delegation", "rateLimits", "mode"}

// namePattern keeps policy and rule names printable and usable in URLs
// (/admin/policies/{name}) and headers (X-MeshGuard-Policy).
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Parse decodes every policy document in one file. It returns all problems
// found, each naming file, line and field, as an ErrorList wrapping ErrInvalid.
// Policies of documents without errors are returned even when others fail,
// for tools that want to show partial results; loaders must not use them
// unless err is nil.
func Parse(file string, data []byte) ([]*Policy, error) {
	d := &decoder{file: file}
	if len(data) > MaxFileBytes {
		d.fail(nil, "", "file is %d bytes, larger than the %d-byte limit", len(data), MaxFileBytes)
		return nil, d.errs.err()
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*Policy
	for doc := 1; ; doc++ {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.errs = append(d.errs, syntaxError(file, err))
			break // the YAML stream cannot be resynchronised after a syntax error
		}
		if len(root.Content) == 0 || isNull(root.Content[0]) {
			continue // empty document, e.g. a trailing ---
		}
		if !d.refuseAliases(root.Content[0]) {
			continue
		}
		before := len(d.errs)
		p := d.policy(root.Content[0])
		if len(d.errs) == before {
			out = append(out, p)
		}
		if len(out) > MaxPolicies {
			d.fail(root.Content[0], "", "more than %d policies in one file", MaxPolicies)
			break
		}
	}
	return out, d.errs.err()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns yaml.v3's "yaml: line N: msg" into an Error with a line.
func syntaxError(file string, err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func (d *decoder) policy(n *yaml.Node) *Policy {
	p := &Policy{DefaultEffect: Deny, Source: SourceRef{File: d.file, Line: n.Line}}
	var haveName bool
	if !d.fields(n, "", policyKeys, func(k string, v *yaml.Node) {
		switch k {
		case "name":
			p.Name, _ = d.name(v, "name")
			haveName = true
		case "version":
			p.Version, _ = d.looseStr(v, "version")
		case "description":
			p.Description, _ = d.str(v, "description")
		case "appliesTo":
			p.AppliesTo = d.appliesTo(v)
		case "rules":
			p.Rules = d.rules(v)
		case "defaultEffect":
			p.DefaultEffect = d.effect(v, "defaultEffect", false)
		case "delegation":
			p.Delegation = d.delegation(v)
		case "rateLimits":
			p.RateLimits = d.rateLimits(v)
		case "mode":
			p.Mode = d.mode(v)
		}
	}) {
		return nil
	}
	if !haveName {
		d.fail(n, "name", "missing (every policy needs a unique name)")
	}
	return p
}

// mode decodes a policy's mode: enforce (kept as "") or shadow.
func (d *decoder) mode(n *yaml.Node) string {
	s, ok := d.str(n, "mode")
	switch {
	case !ok:
		return ""
	case s == ModeEnforce:
		return ""
	case s == ModeShadow:
		return ModeShadow
	}
	d.fail(n, "mode", "%q is not a mode (expected enforce or shadow)", cut(s))
	return ""
}

func (d *decoder) name(n *yaml.Node, field string) (string, bool) {
	s, ok := d.str(n, field)
	if ok && !namePattern.MatchString(s) {
		d.fail(n, field, "%q: expected 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", cut(s))
		return s, false
	}
	return s, ok
}

// msgDefaultApprove: an approval is bound to one rule's request; a default
// would ask a person about every request no rule foresaw.
const msgDefaultApprove = "approve is not a default effect: an approval needs a rule that names the actions it is asked for; write an approve rule (e.g. actions: [\"*\"]) and keep defaultEffect allow or deny"

// effect decodes an effect; approve only where approve is true (a rule, a
// test case's expectation).
func (d *decoder) effect(n *yaml.Node, field string, approve bool) Effect {
	s, ok := d.str(n, field)
	if !ok {
		return Deny
	}
	switch Effect(s) {
	case Allow, Deny:
		return Effect(s)
	case Approve:
		if approve {
			return Approve
		}
		d.fail(n, field, "%s", msgDefaultApprove)
		return Deny
	}
	want := "allow or deny"
	if approve {
		want = "allow, deny or approve"
	}
	d.fail(n, field, "%q is not an effect (expected %s)", cut(s), want)
	return Deny
}

func (d *decoder) appliesTo(n *yaml.Node) AppliesTo {
	var a AppliesTo
	d.fields(n, "appliesTo", []string{"trustTiers", "tags", "agentIds"}, func(k string, v *yaml.Node) {
		field := join("appliesTo", k)
		switch k {
		case "trustTiers":
			names, _ := d.strList(v, field, false)
			for i, s := range names {
				t, err := trust.Parse(s)
				if err != nil {
					d.fail(v.Content[i], index(field, i), "unknown tier %q (expected one of %s)", cut(s), strings.Join(trust.Names(), ", "))
					continue
				}
				a.TrustTiers = append(a.TrustTiers, t)
			}
		case "tags":
			a.Tags = d.nonEmptyList(v, field)
		case "agentIds":
			a.AgentIDs = d.nonEmptyList(v, field)
		}
	})
	return a
}

// nonEmptyList decodes a list of non-empty, bounded strings.
func (d *decoder) nonEmptyList(n *yaml.Node, field string) []string {
	list, _ := d.strList(n, field, false)
	for i, s := range list {
		if s == "" || len(s) > MaxPatternLen {
			d.fail(n.Content[i], index(field, i), "expected a non-empty string of at most %d bytes", MaxPatternLen)
		}
	}
	return list
}

// patterns decodes a list of glob patterns, refusing empty and oversized
// ones and, for actions, literals that are not verb:resource (a typo such as
// "read" could never match and would silently deny).
func (d *decoder) patterns(n *yaml.Node, field string, actions, oneOK bool) []string {
	list, ok := d.strList(n, field, oneOK)
	if !ok {
		return list
	}
	if len(list) == 0 {
		d.fail(n, field, "empty list (expected at least one pattern)")
	}
	for i, s := range list {
		at := n
		if n.Kind == yaml.SequenceNode {
			at = n.Content[i]
		}
		f := field
		if n.Kind == yaml.SequenceNode {
			f = index(field, i)
		}
		switch {
		case s == "":
			d.fail(at, f, "empty pattern (expected e.g. \"read:*\")")
		case len(s) > MaxPatternLen:
			d.fail(at, f, "pattern longer than %d bytes", MaxPatternLen)
		case strings.ContainsAny(s, " \t\r\n"):
			d.fail(at, f, "%q: patterns contain no whitespace", cut(s))
		case actions && !strings.Contains(s, ":") && !strings.Contains(s, "*"):
			d.fail(at, f, "%q: expected an action verb:resource (e.g. \"read:docs\"), or a pattern with *", cut(s))
		}
	}
	return list
}

func (d *decoder) rules(n *yaml.Node) []Rule {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, "rules", "expected a list of rules, got %s", kindName(n))
		return nil
	}
	if len(n.Content) > MaxRulesPerPolicy {
		d.fail(n, "rules", "%d rules, more than the limit of %d", len(n.Content), MaxRulesPerPolicy)
		return nil
	}
	if len(n.Content) == 0 {
		// `rules: []` and no rules key are one policy, with one revision
		// and one JSON form (which writes "rules": [] for both).
		return nil
	}
	rules := make([]Rule, 0, len(n.Content))
	names := make(map[string]int, len(n.Content))
	var unnamed []int
	for i, c := range n.Content {
		field := index("rules", i)
		r := d.rule(c, field)
		switch first, dup := names[r.Name]; {
		case r.Name == "":
			unnamed = append(unnamed, i)
		case dup:
			d.fail(c, join(field, "name"), "duplicate rule name %q (first used by rules[%d])", r.Name, first)
		default:
			names[r.Name] = i
		}
		rules = append(rules, r)
	}
	// Unnamed rules are called after their position, so decisions and
	// explain output can point at them.
	for _, i := range unnamed {
		name := fmt.Sprintf("rule-%d", i+1)
		if other, taken := names[name]; taken {
			d.fail(n.Content[i], index("rules", i), "unnamed rules are named after their position, and %q is taken by rules[%d]; give this rule a name", name, other)
		}
		rules[i].Name = name
	}
	return rules
}

var ruleKeys = []string{"name", "effect", "actions", "conditions", "reason", "approvers", "ttl"}

func (d *decoder) rule(n *yaml.Node, field string) Rule {
	r := Rule{Line: n.Line}
	var haveEffect, haveActions bool
	type approveField struct {
		n     *yaml.Node
		field string
	}
	var approveOnly []approveField
	d.fields(n, field, ruleKeys, func(k string, v *yaml.Node) {
		f := join(field, k)
		switch k {
		case "name":
			r.Name, _ = d.name(v, f)
		case "effect":
			r.Effect, haveEffect = d.effect(v, f, true), true
		case "actions":
			r.Actions, haveActions = d.patterns(v, f, true, false), true
		case "conditions":
			r.Conditions = d.conditions(v, f)
		case "reason":
			r.Reason, _ = d.str(v, f)
		case "approvers":
			r.Approvers = d.approvers(v, f)
			approveOnly = append(approveOnly, approveField{v, f})
		case "ttl":
			r.TTL = d.approvalTTL(v, f)
			approveOnly = append(approveOnly, approveField{v, f})
		}
	})
	if haveEffect && r.Effect != Approve {
		for _, a := range approveOnly {
			d.fail(a.n, a.field, "only an approve rule has this (the rule's effect is %s)", r.Effect)
		}
	}
	if n.Kind == yaml.MappingNode {
		if !haveEffect {
			d.fail(n, join(field, "effect"), "missing (expected allow, deny or approve)")
		}
		if !haveActions {
			d.fail(n, join(field, "actions"), "missing (expected a non-empty list of action patterns)")
		}
	}
	return r
}

// msgEmptyCeiling: `permissionCeiling: []` would read as "delegate nothing",
// which a policy says by having no delegation block, while an empty list
// silently dropped would read as "no ceiling": refused, so neither reading
// can surprise anyone.
const msgEmptyCeiling = "empty list: a ceiling of nothing would deny every delegated action; list the actions delegation may reach, leave permissionCeiling out for no ceiling, or leave delegation out to forbid delegating"

func (d *decoder) delegation(n *yaml.Node) *Delegation {
	del := &Delegation{}
	var haveDepth bool
	if !d.fields(n, "delegation", []string{"maxDepth", "permissionCeiling"}, func(k string, v *yaml.Node) {
		switch k {
		case "maxDepth":
			del.MaxDepth, _ = d.integer(v, "delegation.maxDepth", 1, MaxDelegation)
			haveDepth = true
		case "permissionCeiling":
			if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
				d.fail(v, "delegation.permissionCeiling", "%s", msgEmptyCeiling)
				return
			}
			del.PermissionCeiling = d.patterns(v, "delegation.permissionCeiling", true, false)
		}
	}) {
		return nil
	}
	if !haveDepth {
		d.fail(n, "delegation.maxDepth", "missing (expected a whole number from 1 to %d)", MaxDelegation)
	}
	return del
}

func (d *decoder) rateLimits(n *yaml.Node) *RateLimits {
	rl := &RateLimits{}
	if !d.fields(n, "rateLimits", []string{"requestsPerMinute", "requestsPerHour"}, func(k string, v *yaml.Node) {
		switch k {
		case "requestsPerMinute":
			rl.RequestsPerMinute, _ = d.integer(v, "rateLimits.requestsPerMinute", 1, maxRate)
		case "requestsPerHour":
			rl.RequestsPerHour, _ = d.integer(v, "rateLimits.requestsPerHour", 1, maxRate)
		}
	}) {
		return nil
	}
	if rl.RequestsPerMinute == 0 && rl.RequestsPerHour == 0 {
		d.fail(n, "rateLimits", "empty (expected requestsPerMinute and/or requestsPerHour)")
	}
	return rl
}

// approvers decodes an approve rule's approvers: a bounded list of names
// (tags of people or a named group) as a policy or rule name is written.
func (d *decoder) approvers(n *yaml.Node, field string) []string {
	list, ok := d.strList(n, field, false)
	if !ok {
		return nil
	}
	switch {
	case len(list) == 0:
		d.fail(n, field, "empty list (expected who may approve, e.g. [security]; leave approvers out for anyone who may approve)")
	case len(list) > MaxApprovers:
		d.fail(n, field, "%d approvers, more than the limit of %d", len(list), MaxApprovers)
		return nil
	}
	for i, s := range list {
		if !namePattern.MatchString(s) {
			d.fail(n.Content[i], index(field, i), "%q: expected 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", cut(s))
		}
	}
	return list
}

// approvalTTL decodes an approve rule's ttl: a Go duration ("90m", "24h")
// from MinApprovalTTL to MaxApprovalTTL.
func (d *decoder) approvalTTL(n *yaml.Node, field string) time.Duration {
	s, ok := d.str(n, field)
	if !ok {
		return 0
	}
	ttl, err := time.ParseDuration(s)
	if err != nil || ttl < MinApprovalTTL || ttl > MaxApprovalTTL {
		d.fail(n, field, "%q: expected a duration from 1m to 720h (30 days), such as \"15m\" or \"24h\"", cut(s))
		return 0
	}
	return ttl
}
