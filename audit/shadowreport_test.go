package audit

import (
	"fmt"
	"testing"
	"time"
)

func TestEnforcedEffect(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Record
		want string
	}{
		{"allowed", Record{Decision: "allow"}, "allow"},
		{"denied by policy", Record{Decision: "deny", Inputs: &Inputs{}}, "deny"},
		{"allowed by policy, then rate limited", Record{Decision: "deny", Inputs: &Inputs{AfterPolicy: true}}, "allow"},
		{"an approval asked for", Record{Decision: "deny", Approval: &Approval{ID: "apr_1", Outcome: "requested"}}, "approve"},
		{"an approval used", Record{Decision: "allow", Approval: &Approval{ID: "apr_1", Outcome: "granted"}}, "approve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := EnforcedEffect(&tc.r); got != tc.want {
				t.Fatalf("%s, want %s", got, tc.want)
			}
		})
	}
}

// TestShadowReporterBounds: groups, and examples per group, are bounded
// whatever the records; what does not fit is counted, not kept.
func TestShadowReporterBounds(t *testing.T) {
	sr := NewShadowReporter("", 100)
	for i := range MaxShadowGroups + 5 {
		for j := range 30 {
			sr.Add(&Record{ID: fmt.Sprintf("aud_%d_%d", i, j), Decision: "allow",
				Shadow: &Shadow{Decision: "deny", Reason: "rule_deny", Policy: "p", Rule: fmt.Sprintf("r%d", i)}})
		}
	}
	sr.Add(&Record{ID: "no shadow", Decision: "allow"})
	rep := sr.Report(time.Time{}, time.Time{})
	if rep.Records != (MaxShadowGroups+5)*30 || len(rep.Groups) != MaxShadowGroups || rep.Ungrouped != 5*30 {
		t.Fatalf("records %d groups %d ungrouped %d", rep.Records, len(rep.Groups), rep.Ungrouped)
	}
	for _, g := range rep.Groups {
		if g.Count != 30 || len(g.Examples) != MaxShadowExamples {
			t.Fatalf("group %s: count %d, %d examples", g.Rule, g.Count, len(g.Examples))
		}
	}
}
