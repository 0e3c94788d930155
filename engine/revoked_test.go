package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/policy"
)

// TestARevokedTokenVoidsTheDelegationsItMinted: the delegation tokens the
// mesh minted for a token's calls (orchestrator → researcher, handed on
// to the emailer) are refused as delegation_revoked once that token is
// revoked, cached or not; the leaked token's authority must not live on
// in them. The agent's other token, and what it minted, work on.
func TestARevokedTokenVoidsTheDelegationsItMinted(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	e := m.F.Engine
	otherT, _, err := m.F.Issuer.Issue(m.Orch, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(token, delegation, host string) string {
		t.Helper()
		d := check(t, e, engine.Request{Token: token, Delegation: delegation, Method: "GET", Host: host, Path: "/papers"})
		if !d.Allowed || d.Delegation == "" {
			t.Fatalf("a call to %s: %+v", host, d)
		}
		return d.Delegation
	}
	toRes := mint(m.OrchT, "", "researcher.mesh")
	toMail := mint(m.ResT, toRes, "emailer.mesh")
	kept := mint(otherT, "", "researcher.mesh")
	uses := []struct {
		name string
		req  engine.Request
	}{
		{"the researcher for the orchestrator", engine.Request{Token: m.ResT, Delegation: toRes, Method: "GET", Path: "/papers"}},
		{"the emailer for orchestrator → researcher", engine.Request{Token: m.MailT, Delegation: toMail, Method: "GET", Path: "/contacts"}},
		{"the researcher handing on", engine.Request{Token: m.ResT, Delegation: toRes, Method: "GET", Host: "emailer.mesh", Path: "/papers"}},
	}
	for _, u := range uses { // verified and cached
		if d := check(t, e, u.req); !d.Allowed {
			t.Fatalf("%s before the revocation: %+v", u.name, d)
		}
	}

	m.F.RevokeToken(t, m.OrchT)
	for _, u := range uses {
		d := check(t, e, u.req)
		if d.Allowed || d.Status != 403 || d.Reason != policy.ReasonDelegationRevoked || d.Delegation != "" || !strings.Contains(d.Message, "revoked token") {
			t.Errorf("%s after the revocation: %+v; want 403 %s, nothing minted", u.name, d, policy.ReasonDelegationRevoked)
		}
	}
	if d := check(t, e, engine.Request{Token: m.ResT, Delegation: kept, Method: "GET", Path: "/papers"}); !d.Allowed {
		t.Errorf("the delegation of the agent's other token: %+v; want it allowed", d)
	}
}
