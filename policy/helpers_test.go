package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/trust"
)

// mustSet parses and compiles YAML documents or fails the test.
func mustSet(t testing.TB, docs ...string) *Set {
	t.Helper()
	var all []*Policy
	for i, d := range docs {
		ps, err := Parse(fmt.Sprintf("test%d.yaml", i), []byte(d))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		all = append(all, ps...)
	}
	s, err := Compile(all)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func agent(name string, tier trust.Tier, tags ...string) Subject {
	return Subject{ID: "agent_" + name, Name: name, Tier: tier, Tags: tags, Active: true}
}

// check evaluates in on both paths (indexed and explaining), insists they
// agree, and returns the decision.
func check(t testing.TB, s *Set, in Input) Decision {
	t.Helper()
	in.Explain = false
	fast := s.Evaluate(&in)
	in.Explain = true
	slow := s.Evaluate(&in)
	if fast.Effect != slow.Effect || fast.Reason != slow.Reason || fast.Policy != slow.Policy || fast.Rule != slow.Rule {
		t.Fatalf("indexed and explaining paths disagree:\nindexed: %+v\nexplain: %+v", fast, slow)
	}
	return fast
}

// want is an exact expectation: every field must equal the decision's,
// and "" means the decision names no policy (or no rule). There is no
// "don't care": a decision that blames the wrong policy is a wrong decision.
type want struct {
	effect Effect
	reason string
	policy string
	rule   string
}

func expect(t testing.TB, got Decision, w want) {
	t.Helper()
	if got.Effect != w.effect || got.Reason != w.reason || got.Policy != w.policy || got.Rule != w.rule {
		t.Fatalf("decision = %s/%s policy=%q rule=%q (%s); want %s/%s policy=%q rule=%q",
			got.Effect, got.Reason, got.Policy, got.Rule, got.Message, w.effect, w.reason, w.policy, w.rule)
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func lines(s ...string) string { return strings.Join(s, "\n") }
