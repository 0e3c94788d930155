package engine_test

import (
	"testing"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/trust"
)

// TestApprovalBindsTheA2AMessage: an approval of an A2A request is bound
// to its params — the message, its parts, its task — as a tool call's is
// to its arguments: the approval of one message does not serve another
// message, nor the same message in another task; the same request again
// uses it. Before, an A2A request carried no arguments, so its binding
// was the agent, chain, action (send:S) and path alone: the approval of
// "pay 10" sent "pay 10000".
func TestApprovalBindsTheA2AMessage(t *testing.T) {
	clk := &clock{now: time.Now()}
	f := enginetest.New(t, `
name: payers
appliesTo: {tags: [payer]}
rules:
  - {name: ask, effect: approve, actions: ["send:*"]}
`, enginetest.Options{Now: clk.Now, ApprovalPendingTTL: 30 * time.Minute,
		Routes: []engine.Route{{Host: "bank.mesh", Path: "*", Protocol: agentproto.A2A, Service: "bank"}}})
	_, tok := f.Agent(t, "payer", trust.Verified, []string{"payer"})
	send := func(params string) engine.Request {
		return engine.Request{Source: engine.SourceGateway, Token: tok, Method: "POST", Host: "bank.mesh", Path: "/",
			Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"message/send","params":` + params + `}`)}
	}
	msg := func(text, task string) string {
		m := `{"message":{"role":"user","messageId":"m-1","parts":[{"kind":"text","text":"` + text + `"}]`
		if task != "" {
			m += `,"taskId":"` + task + `"`
		}
		return m + `}}`
	}
	tests := []struct {
		name          string
		approved, use string
	}{
		{"another text", msg("pay 10 to ann", ""), msg("pay 10000 to eve", "")},
		{"another task", msg("pay 10 to ann", "task-1"), msg("pay 10 to ann", "task-2")},
		{"another configuration", `{"message":{"role":"user","messageId":"m-2","parts":[]}}`,
			`{"message":{"role":"user","messageId":"m-2","parts":[]},"configuration":{"pushNotificationConfig":{"url":"http://evil.example/"}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := check(t, f.Engine, send(tc.approved))
			wantApproval(t, first, 403, engine.ReasonApprovalRequired, approval.OutcomeRequested)
			if _, err := f.Store.DecideApproval(t.Context(), approval.Decision{ID: first.ApprovalID, Approve: true, By: "alice@example.com"}); err != nil {
				t.Fatal(err)
			}
			other := check(t, f.Engine, send(tc.use))
			if other.Allowed || other.ApprovalID == first.ApprovalID {
				t.Fatalf("the approval of %s served %s: %d %s %s", tc.approved, tc.use, other.Status, other.Reason, other.ApprovalID)
			}
			// The same request again uses it.
			wantApproval(t, check(t, f.Engine, send(tc.approved)), 200, engine.ReasonApprovalGranted, approval.OutcomeGranted)
		})
	}
}
