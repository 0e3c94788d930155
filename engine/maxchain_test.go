package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
)

// TestDelegationTokensMaxChainIsExact: a delegation token minted by POST
// /v1/delegations carries maxChain, the delegating agents its chain may
// grow to (docs/api.md: maxDepth 1 "lets the delegate act but not hand
// on", 2 "lets it hand on once more"). The engine holds it at its value
// in both places it applies: the chain acting now (at most maxChain
// delegating agents) and a hand-off to another agent (the chain with the
// actor appended, at most maxChain). In the mesh's policies every case
// below is allowed; only the token's maxChain decides.
func TestDelegationTokensMaxChainIsExact(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	e := m.F.Engine
	// token mints the grant root → actors… with the given maxChain, as
	// POST /v1/delegations does.
	token := func(maxChain int, root string, actors ...string) string {
		t.Helper()
		tok, _, err := m.F.Issuer.Delegate(identity.DelegationGrant{Root: root, Actors: actors, MaxChain: maxChain, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	const handOnDenied = "calling agent \"emailer\" would exceed the 1 delegating agents the delegation token allows"
	tests := []struct {
		name   string
		r      engine.Request
		status int
		msg    string // a denial's message
	}{
		// Acting: the chain before the actor.
		{"one delegating agent, maxChain 1: acts", engine.Request{Token: m.ResT, Delegation: token(1, m.Orch.ID, m.Res.ID), Method: "GET", Path: "/papers"}, 200, ""},
		{"two delegating agents, maxChain 2: acts", engine.Request{Token: m.MailT, Delegation: token(2, m.Orch.ID, m.Res.ID, m.Mail.ID), Method: "GET", Path: "/contacts"}, 200, ""},
		{"two delegating agents, maxChain 1: denied", engine.Request{Token: m.MailT, Delegation: token(1, m.Orch.ID, m.Res.ID, m.Mail.ID), Method: "GET", Path: "/contacts"}, 403,
			"the delegation token allows at most 1 delegating agents; this chain has 2"},
		// Handing on: the chain with the actor appended.
		{"hand-on to two delegating agents, maxChain 2: allowed", engine.Request{Token: m.ResT, Delegation: token(2, m.Orch.ID, m.Res.ID), Method: "GET", Host: "emailer.mesh", Path: "/contacts"}, 200, ""},
		{"hand-on to two delegating agents, maxChain 1: denied", engine.Request{Token: m.ResT, Delegation: token(1, m.Orch.ID, m.Res.ID), Method: "GET", Host: "emailer.mesh", Path: "/contacts"}, 403, handOnDenied},
		// maxChain 0: only the policies' limits apply.
		{"maxChain 0: hands on", engine.Request{Token: m.ResT, Delegation: token(0, m.Orch.ID, m.Res.ID), Method: "GET", Host: "emailer.mesh", Path: "/contacts"}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, e, tc.r)
			if d.Status != tc.status {
				t.Fatalf("got %d %s (%s), want %d", d.Status, d.Reason, d.Message, tc.status)
			}
			if tc.status != 200 {
				if d.Reason != policy.ReasonDelegationDepth || d.Message != tc.msg || d.Delegation != "" {
					t.Fatalf("got %s %q (token %t), want %s %q and no token", d.Reason, d.Message, d.Delegation != "", policy.ReasonDelegationDepth, tc.msg)
				}
				return
			}
			if tc.r.Host == "" {
				return
			}
			// The token handed on keeps the parent's maxChain and names
			// the chain with the actor appended.
			g, err := m.F.Cached.VerifyDelegation(d.Delegation)
			if err != nil {
				t.Fatal(err)
			}
			parent, err := m.F.Cached.VerifyDelegation(tc.r.Delegation)
			if err != nil {
				t.Fatal(err)
			}
			if g.MaxChain != parent.MaxChain || g.Root != m.Orch.ID || strings.Join(g.Actors, ",") != m.Res.ID+","+m.Mail.ID {
				t.Fatalf("handed on %+v, parent %+v", g, parent)
			}
		})
	}
}
