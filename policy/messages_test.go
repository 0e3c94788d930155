package policy

import (
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// TestRuleMessages: a decision's message is its rule's reason when the
// rule gives one, and otherwise names the rule and policy; an allow always
// names them. Each rule keeps only its own effect's message (compile.go).
func TestRuleMessages(t *testing.T) {
	s := mustSet(t, `
name: msgs
rules:
  - {name: d-reason, effect: deny, actions: ["d:reason"], reason: "no deleting here"}
  - {name: d-plain, effect: deny, actions: ["d:plain"]}
  - {name: p-reason, effect: approve, actions: ["p:reason"], reason: "ask the owner"}
  - {name: p-plain, effect: approve, actions: ["p:plain"]}
  - {name: a-reason, effect: allow, actions: ["a:reason"], reason: "fine"}
  - {name: a-plain, effect: allow, actions: ["a:plain"]}
`)
	tests := []struct {
		action string
		effect Effect
		msg    string
	}{
		{"d:reason", Deny, "no deleting here"},
		{"d:plain", Deny, `denied by rule "d-plain" of policy "msgs"`},
		{"p:reason", Approve, "ask the owner"},
		{"p:plain", Approve, `rule "p-plain" of policy "msgs" needs a person's approval`},
		{"a:reason", Allow, `allowed by rule "a-reason" of policy "msgs"`},
		{"a:plain", Allow, `allowed by rule "a-plain" of policy "msgs"`},
	}
	for _, tc := range tests {
		t.Run(tc.action, func(t *testing.T) {
			d := check(t, s, Input{Agent: agent("a", trust.Verified), Action: tc.action})
			if d.Effect != tc.effect || d.Message != tc.msg {
				t.Fatalf("got %s %q, want %s %q", d.Effect, d.Message, tc.effect, tc.msg)
			}
		})
	}
}
