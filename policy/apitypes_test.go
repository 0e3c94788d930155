package policy_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

// TestAPIConversions holds that a decision and a test result read the same
// in the API as in policy's own JSON (the CLI prints both), and that the
// conversions lose nothing: every field is set, so a field left out of a
// conversion changes the bytes or the round trip.
func TestAPIConversions(t *testing.T) {
	d := policy.Decision{
		Effect: policy.Deny, Reason: "rule_denied", Message: "m", Policy: "p", Rule: "r", Tier: trust.Verified, Revision: "rev",
		Limits:  []policy.Limit{{Key: "p/r", PerMinute: 5, PerHour: 50}},
		Explain: &policy.Explanation{Policies: []policy.PolicyExplanation{{Name: "p", Covered: true, Coverage: "covers tag x", Rules: []policy.RuleExplanation{{Name: "r", Result: policy.RuleMatched}}, Effect: policy.Deny, Default: true}}, Delegation: []policy.Step{{Check: "chain", Passed: true, Detail: "d"}}},
	}
	r := policy.Result{Name: "n", Passed: true, Decision: policy.Allow, Expected: policy.Allow, Policy: "p", Rule: "r", Reason: "rule_allowed", ExpectedReason: "rule_allowed", Message: "m"}
	tests := []struct {
		name          string
		native, inAPI any
		back          any
		orig          any
	}{
		{"decision", d, d.API(), func() policy.Decision { a := d.API(); return policy.DecisionFromAPI(&a) }(), d},
		{"result", r, r.API(), func() policy.Result { a := r.API(); return policy.ResultFromAPI(&a) }(), r},
	}
	for _, tc := range tests {
		want, err := json.Marshal(tc.native)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(tc.inAPI)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: API JSON\n %s\nwant\n %s", tc.name, got, want)
		}
		if diff := cmp.Diff(tc.orig, tc.back); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", tc.name, diff)
		}
	}
}
