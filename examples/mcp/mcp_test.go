package main

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
)

// TestWalk runs the MCP step of `make demo` against the example policies
// and routes, and checks that every step ends the way the tour says: the
// researcher's list lacks the tool it may not call, the denied tool and the
// refused argument come back as JSON-RPC errors and reach no tool, and the
// audit trail names each tool.
func TestWalk(t *testing.T) {
	var got walked
	var out strings.Builder
	if err := runWalk(context.Background(), &out, walkOptions{policies: "../policies", config: "meshguard.yaml", record: &got}); err != nil {
		t.Fatalf("walk: %v\n%s", err, out.String())
	}
	if want := []string{"delete_paper", "search_papers"}; !slices.Equal(got.offered, want) {
		t.Errorf("the papers server offers %v, want %v", got.offered, want)
	}
	if want := []string{"search_papers"}; !slices.Equal(got.listed, want) {
		t.Errorf("the researcher's tools/list through MeshGuard = %v, want %v", got.listed, want)
	}
	want := []call{
		{agent: "researcher", tool: "search_papers"},
		{agent: "researcher", tool: "delete_paper", denied: true, code: engine.RPCForbidden, rule: "mcp-papers/no-paper-deletes"},
		{agent: "emailer", tool: "send_email"},
		{agent: "emailer", tool: "send_email", denied: true, code: engine.RPCForbidden, rule: "mcp-mail/outside-mail"},
	}
	if !slices.Equal(got.calls, want) {
		t.Errorf("calls:\n got %+v\nwant %+v", got.calls, want)
	}
	// The denials reached no tool.
	if want := []string{"p1", "p2", "p3"}; !slices.Equal(got.papers, want) {
		t.Errorf("papers left: %v, want %v (delete_paper was denied)", got.papers, want)
	}
	if want := []string{"ann@example.com: papers on agents"}; !slices.Equal(got.sent, want) {
		t.Errorf("mail sent: %q, want %q (the outside address was refused)", got.sent, want)
	}
	// The tool calls in the audit tail, each with its MCP call.
	for _, line := range []string{
		`ALLOW 200  researcher  call:papers/search_papers \[mcp tools/call id=\d+\]  rule_allow mcp-papers/search `,
		`DENY  403  researcher  call:papers/delete_paper \[mcp tools/call id=\d+\]  rule_deny mcp-papers/no-paper-deletes `,
		`ALLOW 200  emailer  call:mail/send_email \[mcp tools/call id=\d+\]  rule_allow mcp-mail/mail-tools `,
		`DENY  403  emailer  call:mail/send_email \[mcp tools/call id=\d+\]  rule_deny mcp-mail/outside-mail `,
	} {
		if !regexp.MustCompile(line).MatchString(got.out) {
			t.Errorf("audit tail lacks %q", line)
		}
	}
	if t.Failed() {
		t.Log(out.String())
	}
}
