package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// TestIndexMatchesLinearScan generates random policy sets whose action
// patterns are drawn from a tiny alphabet (so shapes collide: literals,
// prefixes, suffixes, middles, bare stars, repeats) and checks that the
// indexed evaluation agrees with the rule-by-rule explaining scan on every
// action over that alphabet.
func TestIndexMatchesLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "b", ":", "*", "ab", "a:", ":b"}
	pattern := func() string {
		var sb strings.Builder
		for range 1 + rng.IntN(4) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		p := sb.String()
		if !strings.Contains(p, ":") && !strings.Contains(p, "*") {
			p += ":"
		}
		return p
	}
	var actions []string
	for _, x := range []string{"", "a", "b", "ab", "ba", "aab"} {
		for _, y := range []string{"", "a", "b", "ab", "b:a", "a:b"} {
			actions = append(actions, x+":"+y)
		}
	}
	tags := []string{"t1", "t2"}
	for round := range 200 {
		var docs []string
		for p := range 1 + rng.IntN(6) {
			var sb strings.Builder
			fmt.Fprintf(&sb, "name: p%d\n", p)
			if rng.IntN(2) == 0 {
				fmt.Fprintf(&sb, "appliesTo: {tags: [%s]}\n", tags[rng.IntN(2)])
			}
			if rng.IntN(3) == 0 {
				sb.WriteString("defaultEffect: allow\n")
			}
			sb.WriteString("rules:\n")
			n := rng.IntN(6)
			if n == 0 {
				sb.WriteString("  []\n")
			}
			for r := range n {
				eff := []string{"allow", "deny", "approve"}[rng.IntN(3)]
				var acts []string
				for range 1 + rng.IntN(3) {
					acts = append(acts, fmt.Sprintf("%q", pattern()))
				}
				fmt.Fprintf(&sb, "  - {name: r%d, effect: %s, actions: [%s]", r, eff, strings.Join(acts, ", "))
				if rng.IntN(4) == 0 {
					sb.WriteString(", conditions: {context: {k: {in: [1, 2]}}}")
				}
				sb.WriteString("}\n")
			}
			docs = append(docs, sb.String())
		}
		s := mustSet(t, docs...)
		for _, act := range actions {
			for _, k := range []float64{1, 3} {
				in := Input{Agent: Subject{ID: "agent_x", Tier: trust.Verified, Tags: []string{tags[rng.IntN(2)]}, Active: true},
					Action: act, Context: map[string]any{"k": k}}
				check(t, s, in)
			}
		}
		if t.Failed() {
			t.Fatalf("round %d policies:\n%s", round, strings.Join(docs, "---\n"))
		}
	}
}
