package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/trust"
)

// These tests pin the edges of documented rules (docs/policies.md) that
// mutation testing (docs/mutation.md) showed no other test held: a limit
// taken as exactly its value, a pattern matching the whole action, large
// sets, and the rate limits a decision carries.

// boundarySet parses the documents as one file each and compiles them.
func boundarySet(t *testing.T, docs ...string) *Set {
	t.Helper()
	var all []*Policy
	for i, d := range docs {
		ps, err := Parse(fmt.Sprintf("b%d.yaml", i), []byte(d))
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

// manyPolicies returns n policies named p00000…, each covering agents tagged
// with its own name and allowing act:<name>.
func manyPolicies(t *testing.T, n int) []*Policy {
	t.Helper()
	var b strings.Builder
	for i := range n {
		name := fmt.Sprintf("p%05d", i)
		fmt.Fprintf(&b, "---\nname: %s\nappliesTo: {tags: [%s]}\nrules:\n  - {effect: allow, actions: ['act:%s']}\n", name, name, name)
	}
	ps, err := Parse("many.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return ps
}

func TestPolicyCountLimitIsExact(t *testing.T) {
	ps := manyPolicies(t, MaxPolicies)
	s, err := Compile(ps)
	if err != nil {
		t.Fatalf("a set of exactly %d policies (the documented limit) was refused: %v", MaxPolicies, err)
	}
	// The last policy of a set this large still decides: coverage and
	// matches span many bitset words.
	last := fmt.Sprintf("p%05d", MaxPolicies-1)
	a := Subject{ID: "agent_x", Name: "x", Tier: trust.Verified, Tags: []string{last}, Active: true}
	for _, in := range []Input{
		{Agent: a, Action: "act:" + last},
		{Agent: a, Action: "act:" + last, Explain: true},
	} {
		if d := s.Evaluate(&in); !d.Allowed() || d.Policy != last {
			t.Fatalf("explain=%v: %s/%s by %q, want allowed by %q", in.Explain, d.Effect, d.Reason, d.Policy, last)
		}
	}
	if d := s.Evaluate(&Input{Agent: a, Action: "act:p00000"}); d.Allowed() {
		t.Fatalf("an action only an uncovering policy allows was allowed by %q", d.Policy)
	}

	extra := manyPolicies(t, 1)
	extra[0].Name = "zzz"
	_, err = Compile(append(slices.Clone(ps), extra[0]))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d policies, more than the limit of %d", MaxPolicies+1, MaxPolicies)) {
		t.Fatalf("Compile(%d policies) = %v, want the limit error", MaxPolicies+1, err)
	}
}

// TestLargeSetDecides covers a set wider than the stack scratch space of a
// decision (more than 256 policies), on every path that uses it.
func TestLargeSetDecides(t *testing.T) {
	const n = 300
	var docs []string
	for i := range n {
		docs = append(docs, fmt.Sprintf(
			"name: p%03d\nappliesTo: {tags: [t%03d]}\nrules:\n  - {effect: allow, actions: ['act:*']}\ndelegation: {maxDepth: 1}\n", i, i))
	}
	s := boundarySet(t, docs...)
	root := Subject{ID: "agent_root", Name: "root", Tier: trust.Verified, Tags: []string{"t299"}, Active: true}
	actor := Subject{ID: "agent_actor", Name: "actor", Tier: trust.Verified, Tags: []string{"t298"}, Active: true}
	if d := s.Evaluate(&Input{Agent: actor, Action: "act:x", Chain: []Subject{root}}); !d.Allowed() || d.Policy != "p298" {
		t.Fatalf("delegated decision: %s/%s by %q (%s), want allowed by p298", d.Effect, d.Reason, d.Policy, d.Message)
	}
	if d := s.HandOff(nil, root, actor); !d.Allowed() {
		t.Fatalf("HandOff: %s/%s (%s), want allowed", d.Effect, d.Reason, d.Message)
	}
	stranger := Subject{ID: "agent_s", Name: "s", Tier: trust.Verified, Tags: []string{"none"}, Active: true}
	if d := s.Evaluate(&Input{Agent: stranger, Action: "act:x"}); d.Reason != ReasonNoPolicy {
		t.Fatalf("uncovered agent: %s/%s, want %s", d.Effect, d.Reason, ReasonNoPolicy)
	}
}

// TestDocumentedPatternsDecide runs the pattern table of docs/policies.md
// through decisions, so through the action index (not only the glob).
func TestDocumentedPatternsDecide(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{"read:*", []string{"read:docs", "read:a/b:c", "read:"}, []string{"Read:docs", "write:docs", "read"}},
		{"*:email", []string{"write:email", ":email"}, []string{"read:emails", "email"}},
		{"write:email/*", []string{"write:email/drafts", "write:email/"}, []string{"write:email"}},
		{"read:*/x", []string{"read:a/x", "read:a/b/x", "read:/x"}, []string{"read:a/y", "read:x", "read:a/x/y"}},
		{"*a*:b", []string{"xay:b", "a:b"}, []string{"xy:b", "a:bc"}},
		{"*", []string{"read:docs", ":"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			s := boundarySet(t, fmt.Sprintf("name: p\nrules:\n  - {name: r, effect: allow, actions: [%q]}\n", tc.pattern))
			a := Subject{ID: "agent_a", Name: "a", Tier: trust.Verified, Active: true}
			for _, action := range tc.match {
				for _, explain := range []bool{false, true} {
					d := s.Evaluate(&Input{Agent: a, Action: action, Explain: explain})
					if !d.Allowed() || d.Rule != "r" {
						t.Errorf("%q (explain=%v): %s/%s, want allowed by rule r", action, explain, d.Effect, d.Reason)
					}
				}
			}
			for _, action := range tc.noMatch {
				for _, explain := range []bool{false, true} {
					d := s.Evaluate(&Input{Agent: a, Action: action, Explain: explain})
					if d.Allowed() || d.Reason != ReasonNoMatchingRule {
						t.Errorf("%q (explain=%v): %s/%s, want denied with %s", action, explain, d.Effect, d.Reason, ReasonNoMatchingRule)
					}
				}
			}
		})
	}
}

// TestDecisionCarriesCoveringPoliciesLimits: an allowed request counts against
// the rateLimits of every covering policy — and only those that set some.
func TestDecisionCarriesCoveringPoliciesLimits(t *testing.T) {
	s := boundarySet(t,
		"name: a-limited\nrules:\n  - {effect: allow, actions: ['read:*']}\nrateLimits: {requestsPerMinute: 5}\n",
		"name: b-unlimited\nrules:\n  - {effect: allow, actions: ['read:*']}\n",
		"name: c-limited\nrules:\n  - {effect: allow, actions: ['read:*']}\nrateLimits: {requestsPerHour: 7}\n",
		"name: d-unlimited\ndefaultEffect: allow\nrules: []\n",
		"name: e-other\nappliesTo: {tags: [other]}\nrules: []\nrateLimits: {requestsPerMinute: 1}\n",
	)
	a := Subject{ID: "agent_a", Name: "a", Tier: trust.Verified, Active: true}
	d := s.Evaluate(&Input{Agent: a, Action: "read:x"})
	want := []Limit{{Key: "a-limited", PerMinute: 5}, {Key: "c-limited", PerHour: 7}}
	if !d.Allowed() || !slices.Equal(d.Limits, want) {
		t.Fatalf("%s/%s limits %+v, want allowed with %+v", d.Effect, d.Reason, d.Limits, want)
	}
}

// TestOfflineFileLimits: agents and tests files are bounded like policy files
// (MaxFileBytes, the limit itself allowed), and a test case's context may
// nest at most 32 levels, through mappings and lists alike, so a hostile
// file cannot recurse the decoder without bound.
func TestOfflineFileLimits(t *testing.T) {
	agents := "agents:\n  - {name: a, trustTier: verified}\n"
	pad := func(s string, n int) []byte { return []byte(s + "#" + strings.Repeat("x", n-len(s)-2) + "\n") }
	dir, err := ParseAgents("agents.yaml", pad(agents, MaxFileBytes))
	if err != nil {
		t.Fatalf("an agents file of exactly %d bytes: %v", MaxFileBytes, err)
	}
	// An error about the whole file names the file and no line (Line 0 is "unknown").
	wantErr := fmt.Sprintf("agents.yaml: file is %d bytes, larger than the %d-byte limit", MaxFileBytes+1, MaxFileBytes)
	if _, err := ParseAgents("agents.yaml", pad(agents, MaxFileBytes+1)); err == nil || err.Error() != wantErr {
		t.Fatalf("an agents file of %d bytes: %v, want %q", MaxFileBytes+1, err, wantErr)
	}

	nested := func(open, close string, n int) string {
		return strings.Repeat(open, n) + "1" + strings.Repeat(close, n)
	}
	tests := []struct {
		name    string
		context string
		ok      bool
	}{
		// The context is level 0; each mapping or list below it one more.
		{"32 levels of mappings", nested("{k: ", "}", 32), true},
		{"33 levels of mappings", nested("{k: ", "}", 33), false},
		{"32 levels through lists", "{k: " + nested("[", "]", 31) + "}", true},
		{"33 levels through lists", "{k: " + nested("[", "]", 32) + "}", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := "tests:\n  - {name: deep, agent: a, action: 'read:x', expect: allow, context: " + tc.context + "}\n"
			cases, err := ParseTests("tests.yaml", []byte(doc), dir)
			if tc.ok && (err != nil || len(cases) != 1) {
				t.Fatalf("ParseTests = %d cases, %v; want the case", len(cases), err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "nested more than 32 levels")) {
				t.Fatalf("ParseTests = %v, want the nesting error", err)
			}
		})
	}
}

// TestTimeWindowMinutes: a window's minutes count, not only its hours.
func TestTimeWindowMinutes(t *testing.T) {
	s := boundarySet(t, "name: p\nrules:\n  - {effect: allow, actions: ['act:*'], conditions: {time: {between: \"09:15-09:45\"}}}\n")
	a := Subject{ID: "agent_a", Name: "a", Tier: trust.Verified, Active: true}
	for _, tc := range []struct {
		at   string
		want bool
	}{
		{"2026-03-02T09:10:00Z", false},
		{"2026-03-02T09:14:59Z", false},
		{"2026-03-02T09:15:00Z", true},
		{"2026-03-02T09:44:00Z", true},
		{"2026-03-02T09:45:00Z", false},
	} {
		when, err := time.Parse(time.RFC3339, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		d := s.Evaluate(&Input{Agent: a, Action: "act:x", Time: when})
		if d.Allowed() != tc.want {
			t.Errorf("at %s: allowed = %v, want %v", tc.at, d.Allowed(), tc.want)
		}
	}
}

// TestMemberIsJudgedWithTheChainBeforeIt: an earlier agent U "is evaluated as
// if U acted, with the chain before U" (docs/policies.md, Delegation) — so
// for the root, as an agent acting alone.
func TestMemberIsJudgedWithTheChainBeforeIt(t *testing.T) {
	s := boundarySet(t,
		"name: roots\nappliesTo: {tags: [root]}\nrules:\n  - {name: own-work, effect: allow, actions: ['act:*'], conditions: {delegated: false}}\ndelegation: {maxDepth: 1}\n",
		"name: actors\nappliesTo: {tags: [actor]}\nrules:\n  - {effect: allow, actions: ['act:*']}\n",
	)
	root := Subject{ID: "agent_root", Name: "root", Tier: trust.Verified, Tags: []string{"root"}, Active: true}
	actor := Subject{ID: "agent_actor", Name: "actor", Tier: trust.Verified, Tags: []string{"actor"}, Active: true}
	for _, explain := range []bool{false, true} {
		d := s.Evaluate(&Input{Agent: actor, Action: "act:x", Chain: []Subject{root}, Explain: explain})
		if !d.Allowed() {
			t.Fatalf("explain=%v: %s/%s (%s), want allowed: the root acting alone is not delegated", explain, d.Effect, d.Reason, d.Message)
		}
	}
}

// TestPolicyFileSizeLimitIsExact: a policy file of exactly MaxFileBytes loads
// whole; one byte more is refused, not read in part.
func TestPolicyFileSizeLimitIsExact(t *testing.T) {
	policy := "name: last-line\nrules:\n  - {effect: allow, actions: ['read:*']}\n"
	write := func(size int) string {
		dir := t.TempDir()
		// The padding comes first, so a file read in part loses the policy.
		data := "#" + strings.Repeat("x", size-len(policy)-2) + "\n" + policy
		if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	s, err := Load(context.Background(), Dir(write(MaxFileBytes)))
	if err != nil {
		t.Fatalf("a file of exactly %d bytes: %v", MaxFileBytes, err)
	}
	a := Subject{ID: "agent_a", Name: "a", Tier: trust.Verified, Active: true}
	if d := s.Evaluate(&Input{Agent: a, Action: "read:x"}); !d.Allowed() || d.Policy != "last-line" {
		t.Fatalf("%s/%s by %q, want allowed by last-line", d.Effect, d.Reason, d.Policy)
	}
	if _, err := Load(context.Background(), Dir(write(MaxFileBytes+1))); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("larger than the %d-byte limit", MaxFileBytes)) {
		t.Fatalf("a file of %d bytes: %v, want the size error", MaxFileBytes+1, err)
	}
}

// TestRulesPerPolicyLimitIsExact: a policy may hold exactly MaxRulesPerPolicy rules.
func TestRulesPerPolicyLimitIsExact(t *testing.T) {
	doc := func(n int) []byte {
		var b strings.Builder
		b.WriteString("name: big\nrules:\n")
		for i := range n {
			fmt.Fprintf(&b, "  - {effect: allow, actions: ['act:%d']}\n", i)
		}
		return []byte(b.String())
	}
	if _, err := Parse("big.yaml", doc(MaxRulesPerPolicy)); err != nil {
		t.Fatalf("%d rules: %v", MaxRulesPerPolicy, err)
	}
	if _, err := Parse("big.yaml", doc(MaxRulesPerPolicy+1)); err == nil {
		t.Fatalf("%d rules were accepted", MaxRulesPerPolicy+1)
	}
}

// TestNumericTextDigits: text compared with lt/gt/… is read as a number when
// it is one in JSON's grammar; every digit counts, 0 and 9 included.
func TestNumericTextDigits(t *testing.T) {
	s := boundarySet(t, "name: p\nrules:\n  - {effect: allow, actions: ['act:*'], conditions: {context: {n: {gte: 0}}}}\n")
	a := Subject{ID: "agent_a", Name: "a", Tier: trust.Verified, Active: true}
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"0", true}, {"9", true}, {"90", true}, {"1234567890", true}, {"0.9", true}, {"9e9", true},
		{"09", false}, {"/", false}, {":", false}, {"9:", false},
	} {
		d := s.Evaluate(&Input{Agent: a, Action: "act:x", Context: map[string]any{"n": tc.text}})
		if d.Allowed() != tc.want {
			t.Errorf("%q >= 0: allowed = %v, want %v", tc.text, d.Allowed(), tc.want)
		}
	}
}
