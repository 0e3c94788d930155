package filterapi_test

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
)

// TestFilterAuditChecksDelegatedAllows: a shipped allow with a delegation
// chain is held to the policies as the engine would hold it, the chain's
// agents included (the token's scope, which the record lacks, aside).
// Before, a chain of two entries skipped the policy check, so a filter
// credential could seal into the trail an allow of anything for any
// active agent by naming any other one as its delegator.
func TestFilterAuditChecksDelegatedAllows(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	post := func(r audit.Record) (int, string) {
		return postAudit(t, api, filterprotocol.AuditBatch{Records: []audit.Record{r}})
	}
	rev := env.F.Policies.Current().Revision()
	// The filter's "delegated read": Mail reads the docs on Orch's behalf.
	record := func(action string, chain ...string) audit.Record {
		return audit.Record{Timestamp: filtertest.Now, DecisionID: "dec_d", AgentID: env.Mail.ID, AgentName: env.Mail.Name, Action: action,
			Method: "GET", Path: "/docs/plan", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "rule_allow", Source: "wasm", Mode: "enforce",
			PolicyRevision: rev, Chain: chain, DelegationDepth: len(chain) - 1}
	}
	for _, tt := range []struct {
		name   string
		rec    audit.Record
		status int
		want   string
	}{
		{"a delegated read the policies give", record("read:docs", env.Orch.ID, env.Mail.ID), 204, ""},
		{"a delegated action nobody in the chain may take", record("delete:everything", env.Orch.ID, env.Mail.ID), 400, "would not have allowed"},
		{"a chain whose actor is another agent", record("read:docs", env.Orch.ID, env.Res.ID), 400, "is not the record's agent"},
		{"a chain naming no agent", record("read:docs", "agent_nobody0000000000", env.Mail.ID), 400, "is no agent"},
		{"a one-entry chain of another agent", record("read:docs", env.Orch.ID), 400, "is not the record's agent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, msg := post(tt.rec); code != tt.status || !strings.Contains(msg, tt.want) {
				t.Fatalf("%d %q; want %d mentioning %q", code, msg, tt.status, tt.want)
			}
		})
	}
}
