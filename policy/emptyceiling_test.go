package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// TestEmptyPermissionCeilingRefused: `permissionCeiling: []` is refused,
// in YAML and in the JSON form the wasm filter receives, and a Policy built
// in Go with an empty ceiling does not compile: it must never come to mean
// "no ceiling", the widest reading (docs/policies.md#delegation).
func TestEmptyPermissionCeilingRefused(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
	}{
		{"YAML", "name: p\ndelegation:\n  maxDepth: 1\n  permissionCeiling: []\n", 4},
		{"YAML flow", "name: p\ndelegation: {maxDepth: 1, permissionCeiling: []}\n", 2},
		{"JSON", `{"name":"p","rules":[],"defaultEffect":"deny","delegation":{"maxDepth":1,"permissionCeiling":[]}}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := Parse("p.yaml", []byte(tc.doc))
			var list ErrorList
			if !errors.As(err, &list) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, %v; want an ErrorList wrapping ErrInvalid", ps, err)
			}
			if len(list) != 1 || list[0].Field != "delegation.permissionCeiling" || list[0].Msg != msgEmptyCeiling || list[0].Line != tc.line {
				t.Fatalf("errors:\n%v\nwant one, at p.yaml:%d: delegation.permissionCeiling: %s", err, tc.line, msgEmptyCeiling)
			}
			if len(ps) != 0 {
				t.Fatalf("the refused policy came back: %+v", ps[0])
			}
		})
	}
	t.Run("Compile", func(t *testing.T) {
		p := &Policy{Name: "p", DefaultEffect: Allow, Source: SourceRef{File: "go", Line: 1},
			Delegation: &Delegation{MaxDepth: 1, PermissionCeiling: []string{}}}
		s, err := Compile([]*Policy{p})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "go:1: delegation.permissionCeiling: empty list") {
			t.Fatalf("Compile = %v, %v; want the empty ceiling refused", s, err)
		}
	})
}

// TestCeilingMeanings pins the two readings an empty ceiling could be
// confused with: no permissionCeiling adds no limit, and a ceiling limits
// delegated actions to its patterns.
func TestCeilingMeanings(t *testing.T) {
	actor := agent("actor", trust.Verified, "actor")
	root := agent("root", trust.Trusted, "root")
	actorPolicy := "name: actors\nappliesTo: {tags: [actor]}\nrules: [{name: all, effect: allow, actions: ['*']}]"
	for _, tc := range []struct {
		name, delegation string
		want             want
	}{
		{"no ceiling: the rules decide", "{maxDepth: 1}", want{Allow, ReasonRuleAllow, "actors", "all"}},
		{"a ceiling excludes what it does not list", "{maxDepth: 1, permissionCeiling: ['read:*']}", want{Deny, ReasonDelegationCeiling, "roots", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, actorPolicy,
				"name: roots\nappliesTo: {tags: [root]}\nrules: [{name: all, effect: allow, actions: ['*']}]\ndelegation: "+tc.delegation)
			expect(t, check(t, s, Input{Agent: actor, Chain: []Subject{root}, Action: "write:x"}), tc.want)
		})
	}
}
