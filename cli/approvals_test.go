package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
)

// TestApprovalsCommands: against a live API, an agent's request held for
// approval is listed (by status and by agent name), shown with what it
// asked, approved by $USER, refused a second decision (exit 1, naming
// approval_not_pending), and the agent's retry is then allowed once; deny
// records --by; without --by or $USER nothing is sent (exit 2).
func TestApprovalsCommands(t *testing.T) {
	l := newLive(t)
	ctx := context.Background()
	c, err := client.New(client.Config{BaseURL: l.url, AdminToken: testAdminToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyPolicyYAML(ctx, []byte("name: ask\nappliesTo: {tags: [asker]}\nrules:\n  - {name: sends, effect: approve, actions: [\"send:*\"], approvers: [security]}\n")); err != nil {
		t.Fatal(err)
	}
	ag, err := c.CreateAgent(ctx, api.CreateAgentRequest{Name: "asker", TrustTier: "verified", Tags: []string{"asker"}})
	if err != nil {
		t.Fatal(err)
	}
	agent := c.WithAgentToken(ag.Token)
	ask := func(resource string) (api.Decision, error) {
		return agent.Check(ctx, api.CheckRequest{Action: "send:mail", Resource: resource})
	}
	d, err := ask("/mail/1")
	if d.Reason != "approval_required" || d.ApprovalID == "" || err == nil {
		t.Fatalf("first ask: %+v, %v", d, err)
	}
	id := d.ApprovalID

	out := l.must(t, "approvals", "list", "--status", "pending")
	if !strings.Contains(out, id) || !strings.Contains(out, "pending") || !strings.Contains(out, "asker") || !strings.Contains(out, "send:mail") {
		t.Fatalf("list:\n%s", out)
	}
	list := decodeJSON[api.ApprovalList](t, l.must(t, "approvals", "list", "--agent", "asker", "--json"))
	if len(list.Approvals) != 1 || list.Approvals[0].ID != id || list.Approvals[0].AgentID != ag.ID {
		t.Fatalf("list --agent asker: %+v", list)
	}
	if out := l.must(t, "approvals", "list", "--status", "used"); !strings.Contains(out, "no approvals") {
		t.Fatalf("list --status used:\n%s", out)
	}
	out = l.must(t, "approvals", "show", id)
	for _, want := range []string{"pending", "asker (" + ag.ID + ")", "send:mail", "/mail/1", "policy", "ask, rule sends", "security", "once"} {
		if !strings.Contains(out, want) {
			t.Fatalf("show lacks %q:\n%s", want, out)
		}
	}

	// Nothing is sent without someone to record.
	if code, _, errOut := runEnv(t, l.env(), "approvals", "approve", id); code != 2 || !strings.Contains(errOut, "--by") {
		t.Fatalf("approve without --by or $USER: exit %d, %s", code, errOut)
	}
	env := l.env()
	env["USER"] = "alice"
	if code, out, errOut := runEnv(t, env, "approvals", "approve", id, "--reason", "ticket 7"); code != 0 || !strings.Contains(out, "approved by alice") {
		t.Fatalf("approve: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runEnv(t, env, "approvals", "deny", id); code != 1 || !strings.Contains(errOut, "approval_not_pending") {
		t.Fatalf("deny after approve: exit %d, %s", code, errOut)
	}
	shown := decodeJSON[api.Approval](t, l.must(t, "approvals", "show", id, "--json"))
	if shown.Status != "approved" || shown.DecidedBy != "alice" || shown.Reason != "ticket 7" {
		t.Fatalf("show --json after approve: %+v", shown)
	}
	if d, err := ask("/mail/1"); err != nil || !d.Allowed || d.Reason != "approval_granted" {
		t.Fatalf("the retry: %+v, %v", d, err)
	}
	var ae *client.APIError
	if _, err := ask("/mail/1"); !errors.As(err, &ae) || ae.Decision == nil || ae.Decision.ApprovalID == id {
		t.Fatalf("the approval served twice: %v", err)
	}

	d, _ = ask("/mail/2")
	if out := l.must(t, "approvals", "deny", d.ApprovalID, "--by", "bob"); !strings.Contains(out, "denied by bob") {
		t.Fatalf("deny:\n%s", out)
	}
	if d, err := ask("/mail/2"); err == nil || d.Reason != "approval_denied" {
		t.Fatalf("after the denial: %+v, %v", d, err)
	}
}

// TestApprovalsShowWhatIsBound: `approvals show` prints the context the
// approval is bound to (here POST /v1/check's), so the approver sees the
// recipient, with a value under a redacted name (token) as [redacted]:
// the secret never reaches the output, in text or JSON. Before, show
// printed the action and resource alone.
func TestApprovalsShowWhatIsBound(t *testing.T) {
	l := newLive(t)
	ctx := context.Background()
	c, err := client.New(client.Config{BaseURL: l.url, AdminToken: testAdminToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyPolicyYAML(ctx, []byte("name: ask\nappliesTo: {tags: [asker]}\nrules:\n  - {name: sends, effect: approve, actions: [\"send:*\"]}\n")); err != nil {
		t.Fatal(err)
	}
	ag, err := c.CreateAgent(ctx, api.CreateAgentRequest{Name: "asker", TrustTier: "verified", Tags: []string{"asker"}})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := c.WithAgentToken(ag.Token).Check(ctx, api.CheckRequest{Action: "send:mail", Resource: "/outbox",
		Context: map[string]any{"to": "eve@evil.example", "token": "s3cret-token"}})
	if d.Reason != "approval_required" || d.ApprovalID == "" {
		t.Fatalf("check: %+v", d)
	}
	out := l.must(t, "approvals", "show", d.ApprovalID)
	if !strings.Contains(out, "context") || !strings.Contains(out, `"to":"eve@evil.example"`) || !strings.Contains(out, `"token":"[redacted]"`) {
		t.Fatalf("show lacks the context, redacted:\n%s", out)
	}
	for _, args := range [][]string{{"approvals", "show", d.ApprovalID}, {"approvals", "show", d.ApprovalID, "--json"}, {"approvals", "list"}} {
		if out := l.must(t, args...); strings.Contains(out, "s3cret-token") {
			t.Fatalf("%v prints the secret:\n%s", args, out)
		}
	}
}
