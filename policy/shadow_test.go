package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// checkShadowInvisible is the shadow oracle: a set with shadow policies
// decides every probe (and every hand-off) exactly as the set of its
// enforcing policies alone, and Shadow reports a difference exactly when
// the candidate set (every policy enforcing) decides another effect for a
// request a shadow policy covers — and then names a covering shadow policy.
func checkShadowInvisible(t testing.TB, ps []*Policy, s *Set) {
	t.Helper()
	var enforcing, all []*Policy
	for _, p := range ps {
		if !p.Shadow() {
			enforcing = append(enforcing, p)
		}
		cp := *p
		cp.Mode = ""
		all = append(all, &cp)
	}
	if len(enforcing) == len(ps) {
		if s.HasShadow() {
			t.Fatal("a set without shadow policies has a shadow set")
		}
		return
	}
	alone, err := Compile(enforcing)
	if err != nil {
		t.Fatalf("the enforcing policies alone do not compile: %v", err)
	}
	cand, err := Compile(all)
	if err != nil {
		t.Fatalf("the policies all enforcing do not compile: %v", err)
	}
	if s.Len() != len(ps) {
		t.Fatalf("the set lists %d policies, want %d", s.Len(), len(ps))
	}
	for _, in := range probes(ps) {
		got, want := check(t, s, in), check(t, alone, in)
		if got.Effect != want.Effect || got.Reason != want.Reason || got.Policy != want.Policy || got.Rule != want.Rule ||
			got.Message != want.Message || !slices.Equal(got.Limits, want.Limits) || got.ApproveRule != want.ApproveRule {
			t.Fatalf("shadow policies changed the decision of %+v:\nwith    %+v\nwithout %+v", in, got, want)
		}
		from := Subject{ID: "agent_from", Tier: trust.Trusted, Active: true}
		if h, h0 := s.HandOff(in.Chain, from, in.Agent), alone.HandOff(in.Chain, from, in.Agent); h.Effect != h0.Effect || h.Reason != h0.Reason || h.Policy != h0.Policy {
			t.Fatalf("shadow policies changed the hand-off to %+v:\nwith    %+v\nwithout %+v", in.Agent, h, h0)
		}
		sh, differs := s.Shadow(&in, &got)
		c := cand.Evaluate(&in)
		covered := shadowCovers(ps, &in)
		if differs != (covered && c.Effect != got.Effect) {
			t.Fatalf("Shadow of %+v reports a difference: %v; candidate %s, enforced %s, covered by a shadow policy %v", in, differs, c.Effect, got.Effect, covered)
		}
		if !differs {
			continue
		}
		if sh.Effect != c.Effect || sh.Reason != c.Reason {
			t.Fatalf("Shadow of %+v is %+v, the candidate decides %+v", in, sh, c)
		}
		p, ok := s.Policy(sh.Policy)
		if !ok || !p.Shadow() {
			t.Fatalf("Shadow of %+v names %q, not a shadow policy", in, sh.Policy)
		}
		if sh.Rule != "" && (sh.Policy != c.Policy || sh.Rule != c.Rule) {
			t.Fatalf("Shadow of %+v names rule %s/%s, the candidate's is %s/%s", in, sh.Policy, sh.Rule, c.Policy, c.Rule)
		}
	}
}

// shadowCovers: some shadow policy covers the agent or a member of its
// chain (covers is the oracle's own coverage rule).
func shadowCovers(ps []*Policy, in *Input) bool {
	for _, p := range ps {
		if !p.Shadow() {
			continue
		}
		if covers(p, &in.Agent) {
			return true
		}
		for i := range in.Chain {
			if covers(p, &in.Chain[i]) {
				return true
			}
		}
	}
	return false
}

// TestShadowPoliciesNeverDecide draws random sets, some of whose policies
// are shadow ones, and holds every one to checkShadowInvisible.
func TestShadowPoliciesNeverDecide(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 2))
	effects := []string{"allow", "deny", "approve"}
	actions := []string{"a:b", "a:*", "read:*", "*", "read:x"}
	sawShadowDiffer := 0
	for round := range 300 {
		var docs []string
		for p := range 1 + rng.IntN(5) {
			var sb strings.Builder
			fmt.Fprintf(&sb, "name: p%d\n", p)
			if rng.IntN(2) == 0 {
				sb.WriteString("mode: shadow\n")
			}
			switch rng.IntN(3) {
			case 0:
				sb.WriteString("appliesTo: {tags: [t1]}\n")
			case 1:
				sb.WriteString("appliesTo: {trustTiers: [trusted]}\n")
			}
			if rng.IntN(3) == 0 {
				sb.WriteString("defaultEffect: allow\n")
			}
			if rng.IntN(4) == 0 {
				sb.WriteString("delegation: {maxDepth: 1, permissionCeiling: ['read:*']}\n")
			}
			if rng.IntN(4) == 0 {
				sb.WriteString("rateLimits: {requestsPerMinute: 5}\n")
			}
			sb.WriteString("rules:\n")
			n := 1 + rng.IntN(3)
			for r := range n {
				fmt.Fprintf(&sb, "  - {name: r%d, effect: %s, actions: [%q]", r, effects[rng.IntN(3)], actions[rng.IntN(len(actions))])
				if rng.IntN(3) == 0 {
					sb.WriteString(", conditions: {context: {k: {in: [1]}}}")
				}
				sb.WriteString("}\n")
			}
			docs = append(docs, sb.String())
		}
		var ps []*Policy
		for i, d := range docs {
			p, err := Parse(fmt.Sprintf("p%d.yaml", i), []byte(d))
			if err != nil {
				t.Fatalf("round %d: %v\n%s", round, err, d)
			}
			ps = append(ps, p...)
		}
		s, err := Compile(ps)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		checkShadowInvisible(t, ps, s)
		checkJSONRoundTrip(t, ps, s)
		for _, in := range probes(ps) {
			d := s.Evaluate(&in)
			if _, ok := s.Shadow(&in, &d); ok {
				sawShadowDiffer++
			}
		}
		if t.Failed() {
			t.Fatalf("round %d policies:\n%s", round, strings.Join(docs, "---\n"))
		}
	}
	// The oracle must have seen both answers, or it proved nothing.
	if sawShadowDiffer == 0 {
		t.Fatal("no shadow answer ever differed")
	}
}

func TestShadowMode(t *testing.T) {
	enforced := "name: mail\nappliesTo: {tags: [mailer]}\nrules:\n  - {name: send, effect: allow, actions: ['send:*']}\n"
	shadow := "name: strict\nmode: shadow\nappliesTo: {tags: [mailer]}\nrules:\n  - {name: no-outside, effect: deny, actions: ['send:*'], conditions: {context: {query.to: {not_matches: '*@example.com'}}}}\n  - {name: archive, effect: allow, actions: ['archive:*']}\ndefaultEffect: allow\n"
	s := mustSet(t, enforced, shadow)
	mailer := Subject{ID: "agent_m", Name: "m", Tier: trust.Verified, Tags: []string{"mailer"}, Active: true}
	other := Subject{ID: "agent_o", Name: "o", Tier: trust.Verified, Tags: []string{"other"}, Active: true}
	for _, tc := range []struct {
		name      string
		in        Input
		enforced  want
		shadow    *ShadowDecision
		wantNoted bool
	}{
		{name: "shadow deny over an enforced allow", in: Input{Agent: mailer, Action: "send:mail", Context: map[string]any{"query.to": "eve@evil.example"}},
			enforced: want{Allow, ReasonRuleAllow, "mail", "send"}, shadow: &ShadowDecision{Effect: Deny, Reason: ReasonRuleDeny, Policy: "strict", Rule: "no-outside"}},
		{name: "shadow allow over an enforced deny", in: Input{Agent: mailer, Action: "archive:x"},
			enforced: want{Deny, ReasonNoMatchingRule, "mail", ""}, shadow: &ShadowDecision{Effect: Allow, Reason: ReasonRuleAllow, Policy: "strict", Rule: "archive"}},
		{name: "agreeing shadow", in: Input{Agent: mailer, Action: "send:mail", Context: map[string]any{"query.to": "bob@example.com"}},
			enforced: want{Allow, ReasonRuleAllow, "mail", "send"}},
		{name: "agent no shadow policy covers", in: Input{Agent: other, Action: "send:mail", Context: map[string]any{"query.to": "eve@evil.example"}},
			enforced: want{Deny, ReasonNoPolicy, "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, s, tc.in)
			expect(t, d, tc.enforced)
			sh, ok := s.Shadow(&tc.in, &d)
			switch {
			case tc.shadow == nil && ok:
				t.Fatalf("a shadow answer %+v, want none", sh)
			case tc.shadow != nil && (!ok || sh != *tc.shadow):
				t.Fatalf("shadow answer %+v (%v), want %+v", sh, ok, *tc.shadow)
			}
		})
	}
	if s.Len() != 2 {
		t.Fatalf("Len %d, want 2 (shadow policies are listed)", s.Len())
	}
	if p, ok := s.Policy("strict"); !ok || !p.Shadow() {
		t.Fatalf("Policy(strict) = %v, %v", p, ok)
	}
	if !slices.Contains(s.RequestKeys(), "query.to") {
		t.Fatalf("request keys %v leave out the shadow policy's", s.RequestKeys())
	}
	if alone := mustSet(t, enforced); alone.Revision() == s.Revision() {
		t.Fatal("adding a shadow policy did not change the revision")
	}
}

func TestShadowModeParse(t *testing.T) {
	for _, tc := range []struct {
		name, doc, err string
		shadow         bool
	}{
		{name: "shadow", doc: "name: p\nmode: shadow\n", shadow: true},
		{name: "enforce spelled out", doc: "name: p\nmode: enforce\n"},
		{name: "absent", doc: "name: p\n"},
		{name: "unknown", doc: "name: p\nmode: audit\n", err: `mode: "audit" is not a mode (expected enforce or shadow)`},
		{name: "not a string", doc: "name: p\nmode: [shadow]\n", err: "mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := Parse("p.yaml", []byte(tc.doc))
			if tc.err != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(ps) != 1 || ps[0].Shadow() != tc.shadow {
				t.Fatalf("%v %v", ps, err)
			}
		})
	}
	// A policy built by hand is held to the same rule.
	if _, err := Compile([]*Policy{{Name: "p", DefaultEffect: Deny, Mode: "Shadow"}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "mode") {
		t.Fatalf("Compile of mode Shadow: %v", err)
	}
	// Names are unique across modes.
	if _, err := Compile([]*Policy{{Name: "p", DefaultEffect: Deny}, {Name: "p", DefaultEffect: Deny, Mode: ModeShadow}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a shadow policy sharing an enforcing one's name compiled: %v", err)
	}
}

// TestShadowTestCases: policy test decides with shadow policies enforcing.
func TestShadowTestCases(t *testing.T) {
	s := mustSet(t, "name: p\nrules: [{name: r, effect: allow, actions: ['a:*']}]\n", "name: q\nmode: shadow\nrules: [{name: no, effect: deny, actions: ['a:b']}]\n")
	rep := RunTests(s, []Case{{Name: "c", Input: Input{Agent: agent("x", trust.Verified), Action: "a:b"}, Expect: Deny}}, at("2026-03-02T10:00:00Z"), false)
	if rep.Summary.Passed != 1 || rep.Results[0].Policy != "q" {
		t.Fatalf("%+v", rep)
	}
}

// BenchmarkShadow is what a decision pays for shadow policies: nothing
// when the agent is not covered by one (a coverage lookup), one more
// evaluation when it is.
func BenchmarkShadow(b *testing.B) {
	s := mustSet(b, "name: mail\nappliesTo: {tags: [mailer, other]}\nrules: [{name: send, effect: allow, actions: ['send:*']}]\n",
		"name: strict\nmode: shadow\nappliesTo: {tags: [mailer]}\nrules: [{name: no, effect: deny, actions: ['send:*'], conditions: {context: {to: {not_matches: '*@example.com'}}}}]\n")
	for _, bc := range []struct {
		name string
		tag  string
	}{{"not covered", "other"}, {"covered", "mailer"}} {
		b.Run(bc.name, func(b *testing.B) {
			in := Input{Agent: Subject{ID: "agent_m", Tier: trust.Verified, Tags: []string{bc.tag}, Active: true}, Action: "send:mail",
				Context: map[string]any{"to": "eve@evil.example"}}
			d := s.Evaluate(&in)
			b.ReportAllocs()
			for b.Loop() {
				_, _ = s.Shadow(&in, &d)
			}
		})
	}
}
