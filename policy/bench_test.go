package policy

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// benchSet builds 100 policies holding `rules` rules in all, spread evenly.
// Every policy covers the benchmark agent (through its tier, a tag, or no
// appliesTo), which is the worst case: all 100 take part in each decision.
// Rules mix the four action shapes the index knows (literal, prefix,
// suffix, general) and a quarter carry conditions.
func benchSet(b *testing.B, rules int) *Set {
	b.Helper()
	const policies = 100
	var docs []string
	for p := range policies {
		var sb strings.Builder
		fmt.Fprintf(&sb, "name: policy-%03d\n", p)
		switch p % 4 {
		case 0:
			sb.WriteString("appliesTo: {trustTiers: [verified, trusted]}\n")
		case 1, 2:
			sb.WriteString("appliesTo: {tags: [bench, other]}\n")
		}
		n := rules / policies
		if p < rules%policies {
			n++
		}
		if n == 0 {
			// A policy without rules must not decide the benchmark by its
			// default; let it fall through.
			sb.WriteString("defaultEffect: allow\nrules: []\n")
		} else {
			sb.WriteString("rules:\n")
		}
		for r := range n {
			id := p*1000 + r
			fmt.Fprintf(&sb, "  - name: r%d\n    effect: %s\n", r, map[bool]string{true: "deny", false: "allow"}[r%7 == 6])
			switch r % 4 {
			case 0:
				fmt.Fprintf(&sb, "    actions: ['read:res-%d']\n", id)
			case 1:
				fmt.Fprintf(&sb, "    actions: ['write:res-%d/*']\n", id)
			case 2:
				fmt.Fprintf(&sb, "    actions: ['*:res-%d']\n", id)
			case 3:
				fmt.Fprintf(&sb, "    actions: ['read:res-%d/*/x']\n    conditions: {context: {env: {in: [prod, stage]}}, resource: {startsWith: /api}}\n", id)
			}
		}
		docs = append(docs, sb.String())
	}
	// The rule the benchmark hits, in the last policy, so every earlier
	// policy is passed over first.
	docs = append(docs, "name: zz-target\nappliesTo: {tags: [bench]}\nrules:\n  - name: hit\n    effect: allow\n    actions: ['read:target']\n    conditions: {context: {env: prod}}\n")
	return mustSet(b, docs...)
}

func BenchmarkEvaluate(b *testing.B) {
	a := Subject{ID: "agent_bench", Name: "bench", Tier: trust.Verified, Tags: []string{"bench"}, Active: true}
	ctx := map[string]any{"env": "prod"}
	for _, rules := range []int{10, 1000, 10000} {
		s := benchSet(b, rules)
		for _, tc := range []struct {
			name   string
			action string
			want   Effect
		}{{"allow", "read:target", Allow}, {"nomatch", "read:nothing", Deny}} {
			b.Run(fmt.Sprintf("rules=%d/%s", rules, tc.name), func(b *testing.B) {
				in := Input{Agent: a, Action: tc.action, Resource: "/api/x", Context: ctx}
				b.ReportAllocs()
				for b.Loop() {
					if d := s.Evaluate(&in); d.Effect != tc.want {
						b.Fatalf("got %s (%s)", d.Effect, d.Message)
					}
				}
			})
		}
	}
}

func BenchmarkEvaluateDelegated(b *testing.B) {
	s := mustSet(b, meshPolicies...)
	in := Input{Agent: agent("emailer", trust.Verified, "emailer"), Action: "write:email",
		Chain: []Subject{agent("orchestrator", trust.Trusted, "orchestrator"), agent("researcher", trust.Verified, "researcher")}}
	b.ReportAllocs()
	for b.Loop() {
		if d := s.Evaluate(&in); !d.Allowed() {
			b.Fatal(d.Message)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, rules := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rules=%d", rules), func(b *testing.B) {
			s := benchSet(b, rules)
			ps := s.Policies()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(ps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRuleMemory reports what a compiled set of 10,000 rules keeps
// live (the parsed policies, their compiled form and the action index), in
// bytes a rule: the heap after a collection, with and without the set.
func BenchmarkRuleMemory(b *testing.B) {
	const rules = 10000
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := benchSet(b, rules)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(s)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/rules, "B/rule")
}
