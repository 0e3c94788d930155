package filterapi_test

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
)

// TestFilterAuditHoldsShadowAnswers: a shipped record's shadow answer is
// what the engine writes (an effect, a policy, bounded clean text), or the
// batch is a 400 naming the field. Before, any text went into the chain,
// where `meshguard policy shadow` groups by it: a filter credential could
// write made-up disagreements, or control characters into the report.
func TestFilterAuditHoldsShadowAnswers(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	base := audit.Record{Timestamp: filtertest.Now, DecisionID: "dec_x", AgentID: env.Orch.ID, AgentName: env.Orch.Name, Action: "read:docs",
		Method: "GET", Path: "/docs", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "rule_allow", Source: "wasm", Mode: "enforce"}
	for _, tt := range []struct {
		name   string
		shadow audit.Shadow
		want   string // "": accepted
	}{
		{"what the engine writes", audit.Shadow{Decision: "deny", Reason: "rule_deny", Policy: "strict", Rule: "no-docs"}, ""},
		{"an approve answer", audit.Shadow{Decision: "approve", Reason: "approval_required", Policy: "strict", Rule: "ask"}, ""},
		{"an effect that is none", audit.Shadow{Decision: "maybe", Reason: "rule_deny", Policy: "strict"}, "records[0]: shadow.decision"},
		{"no policy", audit.Shadow{Decision: "deny", Reason: "rule_deny"}, "records[0]: shadow.policy"},
		{"a control character", audit.Shadow{Decision: "deny", Reason: "rule_deny", Policy: "strict\x1b[31m"}, "records[0]: shadow.policy"},
		{"a reason too long", audit.Shadow{Decision: "deny", Reason: strings.Repeat("r", 65), Policy: "strict"}, "records[0]: shadow.reason"},
		{"a rule too long", audit.Shadow{Decision: "deny", Reason: "rule_deny", Policy: "strict", Rule: strings.Repeat("r", 257)}, "records[0]: shadow.rule"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			sh := tt.shadow
			r.Shadow = &sh
			code, msg := postAudit(t, api, filterprotocol.AuditBatch{Records: []audit.Record{r}})
			switch {
			case tt.want == "" && code != 204:
				t.Fatalf("%d %q; want 204", code, msg)
			case tt.want != "" && (code != 400 || !strings.Contains(msg, tt.want)):
				t.Fatalf("%d %q; want 400 mentioning %q", code, msg, tt.want)
			}
		})
	}
}
