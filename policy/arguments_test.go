package policy

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// TestListValues: in an allow rule, a list value (an argument such as
// to: [a, b]) holds a condition when every element holds it; an empty
// list is an absent value, so it allows nothing a positive operator
// guards. (TestListValuesInDenyRules: some element, in a deny rule.)
func TestListValues(t *testing.T) {
	list := func(xs ...any) map[string]any { return map[string]any{"arguments.to": xs} }
	tests := []struct {
		name, cond string
		ctx        map[string]any
		match      bool
	}{
		{"matches: every element", `{matches: "*@ours"}`, list("a@ours", "b@ours"), true},
		{"matches: one element does not", `{matches: "*@ours"}`, list("a@ours", "e@evil"), false},
		{"matches: an empty list", `{matches: "*@ours"}`, list(), false},
		{"matches: an element that is no string", `{matches: "*@ours"}`, list("a@ours", 7.0), false},
		{"not_matches: one element matches", `{not_matches: "*@evil"}`, list("a@ours", "e@evil"), false},
		{"not_matches: no element matches", `{not_matches: "*@evil"}`, list("a@ours", "b@ours"), true},
		{"not_matches: every element matches", `{not_matches: "*@ours"}`, list("a@ours", "b@ours"), false},
		{"not_matches: an empty list", `{not_matches: "*@ours"}`, list(), true},
		{"not_matches: an object element", `{not_matches: "*@ours"}`, list(map[string]any{"x": "a@ours"}), true},
		{"in: every element", `{in: [a, b]}`, list("a", "b", "a"), true},
		{"in: one outside", `{in: [a, b]}`, list("a", "c"), false},
		{"lte: every number", `{lte: 5}`, list(1.0, 5.0), true},
		{"lte: one over", `{lte: 5}`, list(1.0, 6.0), false},
		{"exists", `{exists: true}`, list(), true},
		{"exists: false", `{exists: false}`, list("a"), false},
		{"both: some outside and all ours is contradictory", `{matches: "*@ours", not_matches: "*@ours"}`, list("a@ours"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, ruleWith(`{context: {arguments.to: `+tc.cond+`}}`))
			d := check(t, s, Input{Agent: agent("a", trust.Verified), Action: "act:x", Context: tc.ctx})
			if d.Allowed() != tc.match {
				t.Fatalf("allowed = %v, want %v (%s)", d.Allowed(), tc.match, d.Message)
			}
		})
	}
}

// TestListValuesInDenyRules: in a deny rule, a list value holds a
// condition when some element holds it, so the one bad recipient among good
// ones is denied whichever operator names it. Before, positive operators
// needed every element: `to: [boss@rival, ann@ours]` passed a deny rule
// `matches: "*@rival"` and the mail went to the rival (and, in an allow
// rule, not_matches needed only some element).
func TestListValuesInDenyRules(t *testing.T) {
	list := func(xs ...any) map[string]any { return map[string]any{"arguments.to": xs} }
	tests := []struct {
		name, cond string
		ctx        map[string]any
		denied     bool
	}{
		{"matches: one element among good ones", `{matches: "*@rival"}`, list("ann@ours", "boss@rival"), true},
		{"matches: no element", `{matches: "*@rival"}`, list("ann@ours", "bob@ours"), false},
		{"matches: an empty list", `{matches: "*@rival"}`, list(), false},
		{"in: one element", `{in: [boss@rival]}`, list("ann@ours", "boss@rival"), true},
		{"gt: one element", `{gt: 100}`, list(1.0, 500.0), true},
		{"not_matches: one element outside", `{not_matches: "*@ours"}`, list("ann@ours", "e@evil"), true},
		{"not_matches: every element inside", `{not_matches: "*@ours"}`, list("ann@ours", "bob@ours"), false},
		{"not_matches: an empty list", `{not_matches: "*@ours"}`, list(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := "name: p\nrules:\n  - {name: d, effect: deny, actions: ['act:*'], conditions: {context: {arguments.to: " + tc.cond + "}}}\n" +
				"  - {name: a, effect: allow, actions: ['act:*']}\n"
			d := check(t, mustSet(t, p), Input{Agent: agent("a", trust.Verified), Action: "act:x", Context: tc.ctx})
			if denied := d.Rule == "d" && !d.Allowed(); denied != tc.denied {
				t.Fatalf("denied by d = %v, want %v (%s)", denied, tc.denied, d.Message)
			}
		})
	}
}

// TestArgumentsUnknown: a call decided on its MCP headers alone has
// arguments that are unknown, not absent: a condition on them fails in an
// allow rule and holds in a deny rule, whatever its operator.
func TestArgumentsUnknown(t *testing.T) {
	const p = `name: p
rules:
  - {name: deny-outside, effect: deny, actions: ["call:mail/send"], conditions: {context: {arguments.to: {not_matches: "*@ours"}}}}
  - {name: deny-big, effect: deny, actions: ["call:mail/bulk"], conditions: {context: {arguments.n: {gt: 100}}}}
  - {name: allow-ours, effect: allow, actions: ["call:mail/*"], conditions: {context: {arguments.to: {matches: "*@ours"}}}}
  - {name: allow-absent, effect: allow, actions: ["call:docs/*"], conditions: {context: {arguments.secret: {exists: false}}}}
  - {name: allow-plain, effect: allow, actions: ["call:mail/list", "call:mail/bulk"]}
`
	s := mustSet(t, p)
	tests := []struct {
		action, rule string
		allowed      bool
	}{
		{"call:mail/send", "deny-outside", false},
		{"call:mail/bulk", "deny-big", false},
		{"call:mail/other", "", false},
		{"call:docs/read", "", false},
		{"call:mail/list", "allow-plain", true},
	}
	for _, tc := range tests {
		t.Run(tc.action, func(t *testing.T) {
			d := check(t, s, Input{Agent: agent("a", trust.Verified), Action: tc.action, ArgumentsUnknown: true})
			if d.Allowed() != tc.allowed || d.Rule != tc.rule {
				t.Fatalf("allowed %v by rule %q (%s), want %v by %q", d.Allowed(), d.Rule, d.Message, tc.allowed, tc.rule)
			}
		})
	}
}

// TestArgumentsKeys: arguments.* keys are request keys (the enforcement
// points read them from the body), and a path with an empty segment is
// refused where the policy is read.
func TestArgumentsKeys(t *testing.T) {
	s := mustSet(t, ruleWith(`{context: {arguments.options.cc: {exists: true}, header.x-a: b}}`))
	if got := strings.Join(s.RequestKeys(), ","); got != "arguments.options.cc,header.x-a" {
		t.Fatalf("RequestKeys = %s", got)
	}
	for _, key := range []string{"arguments.", "arguments..cc", "arguments.to."} {
		_, err := Parse("p.yaml", []byte(ruleWith(`{context: {"`+key+`": x}}`)))
		if err == nil || !strings.Contains(err.Error(), "arguments. needs a dot path") {
			t.Errorf("%s: got %v, want a refusal", key, err)
		}
	}
}

// TestArgumentsObject: a context stating the arguments as an object (POST
// /v1/check, policy test cases) is read under arguments.<path>; a flat key
// of the same name wins.
func TestArgumentsObject(t *testing.T) {
	s := mustSet(t, ruleWith(`{context: {arguments.options.cc: {matches: "*@ours"}}}`))
	for _, tc := range []struct {
		name  string
		ctx   map[string]any
		match bool
	}{
		{"nested", map[string]any{"arguments": map[string]any{"options": map[string]any{"cc": "a@ours"}}}, true},
		{"nested, outside", map[string]any{"arguments": map[string]any{"options": map[string]any{"cc": "e@evil"}}}, false},
		{"a path through a string", map[string]any{"arguments": map[string]any{"options": "cc"}}, false},
		{"the flat key wins", map[string]any{"arguments.options.cc": "e@evil", "arguments": map[string]any{"options": map[string]any{"cc": "a@ours"}}}, false},
		{"arguments that are not an object", map[string]any{"arguments": "x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, s, Input{Agent: agent("a", trust.Verified), Action: "act:x", Context: tc.ctx})
			if d.Allowed() != tc.match {
				t.Fatalf("allowed = %v, want %v (%s)", d.Allowed(), tc.match, d.Message)
			}
		})
	}
}
