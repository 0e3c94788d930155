package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/trust"
)

// Istio-shaped SPIFFE IDs of the mesh's workloads.
const (
	orchSPIFFE     = "spiffe://cluster.local/ns/agents/sa/orchestrator"
	mailSPIFFE     = "spiffe://cluster.local/ns/agents/sa/emailer"
	retiredSPIFFE  = "spiffe://cluster.local/ns/agents/sa/retired"
	strangerSPIFFE = "spiffe://cluster.local/ns/agents/sa/stranger"
)

// peerMesh is the mesh with the orchestrator and the emailer bound to
// their SPIFFE IDs (the researcher is not), and a revoked agent bound to
// one.
func peerMesh(t *testing.T, opts enginetest.Options) *mesh {
	t.Helper()
	m := newMesh(t, opts)
	m.F.Bind(t, m.Orch.ID, orchSPIFFE)
	m.F.Bind(t, m.Mail.ID, mailSPIFFE)
	retired, _ := m.F.Agent(t, "retired", trust.Privileged, []string{"emailer"})
	m.F.Bind(t, retired.ID, retiredSPIFFE)
	m.F.Revoke(t, retired.ID)
	return m
}

func TestPeerPrincipal(t *testing.T) {
	m := peerMesh(t, enginetest.Options{})
	tests := []struct {
		name      string
		token     string
		principal string
		status    int
		reason    string
		agent     string // the decision's agent id, "" for none
	}{
		{"bound principal without a token is its agent", "", mailSPIFFE, 200, "rule_allow", m.Mail.ID},
		{"token and its own agent's principal", m.MailT, mailSPIFFE, 200, "rule_allow", m.Mail.ID},
		{"unbound agent's token from an unbound principal", m.ResT, strangerSPIFFE, 200, "rule_allow", m.Res.ID},
		{"principal bound to another agent than the token's", m.ResT, mailSPIFFE, 403, engine.ReasonIdentityMismatch, m.Res.ID},
		{"bound agent's token from an unbound principal", m.MailT, strangerSPIFFE, 403, engine.ReasonIdentityMismatch, m.Mail.ID},
		{"bound agent's token from another bound agent's principal", m.MailT, orchSPIFFE, 403, engine.ReasonIdentityMismatch, m.Mail.ID},
		{"bound agent's token from a principal that is no SPIFFE ID", m.MailT, "cluster.local/ns/agents/sa/emailer", 403, engine.ReasonIdentityMismatch, m.Mail.ID},
		{"another agent's token from a revoked agent's principal", m.ResT, retiredSPIFFE, 403, engine.ReasonIdentityMismatch, m.Res.ID},
		{"unbound principal without a token", "", strangerSPIFFE, 401, engine.ReasonUnauthorized, ""},
		{"principal that is no SPIFFE ID without a token", "", "CN=emailer", 401, engine.ReasonUnauthorized, ""},
		{"bound principal in another spelling", "", strings.ToUpper(mailSPIFFE), 401, engine.ReasonUnauthorized, ""},
		{"revoked bound agent's principal without a token", "", retiredSPIFFE, 401, engine.ReasonAgentRevoked, ""},
		{"principal over the limit", "", mailSPIFFE + "/" + strings.Repeat("a", engine.MaxPrincipalLen), 400, engine.ReasonBadRequest, ""},
		{"principal not UTF-8", m.MailT, "spiffe://cluster.local/\xff", 400, engine.ReasonBadRequest, ""},
		{"principal with a control character", "", mailSPIFFE + "\n", 400, engine.ReasonBadRequest, ""},
		{"neither token nor principal", "", "", 401, engine.ReasonUnauthorized, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, m.F.Engine, engine.Request{Source: engine.SourceExtAuthzGRPC, Token: tc.token, Principal: tc.principal, Method: "GET", Path: "/contacts"})
			if d.Status != tc.status || d.Reason != tc.reason || d.Allowed != (tc.status == 200) {
				t.Fatalf("got %d %s (%s), want %d %s", d.Status, d.Reason, d.Message, tc.status, tc.reason)
			}
			if tc.status != 401 && tc.status != 400 && d.AgentID != tc.agent {
				t.Fatalf("agent %q, want %q", d.AgentID, tc.agent)
			}
			if tc.status == 200 && d.AgentID != tc.agent {
				t.Fatalf("agent %q, want %q", d.AgentID, tc.agent)
			}
		})
	}
}

// TestPeerPrincipalTierIsCurrent: a caller known by its principal acts at
// its agent's tier as stored now; a change is seen as soon as the caches
// are invalidated, and a revocation ends it.
func TestPeerPrincipalTierIsCurrent(t *testing.T) {
	m := peerMesh(t, enginetest.Options{})
	req := engine.Request{Principal: mailSPIFFE, Method: "GET", Path: "/contacts"}
	if d := check(t, m.F.Engine, req); !d.Allowed || d.Tier != trust.Verified {
		t.Fatalf("before: %+v", d)
	}
	a, err := m.F.Store.GetAgent(context.Background(), m.Mail.ID)
	if err != nil {
		t.Fatal(err)
	}
	a.TrustTier = trust.Privileged
	if _, err := m.F.Store.UpdateAgent(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	m.F.Agents.Invalidate()
	if d := check(t, m.F.Engine, req); !d.Allowed || d.Tier != trust.Privileged {
		t.Fatalf("after promotion: %+v", d)
	}
	m.F.Revoke(t, m.Mail.ID)
	if d := check(t, m.F.Engine, req); d.Allowed || d.Status != 401 || d.Reason != engine.ReasonAgentRevoked {
		t.Fatalf("after revocation: %+v", d)
	}
}

// TestPeerPrincipalBindingFollowsUpdates: unbinding a principal ends its
// access without a token, and binding it to another agent moves it.
func TestPeerPrincipalBindingFollowsUpdates(t *testing.T) {
	m := peerMesh(t, enginetest.Options{})
	req := engine.Request{Principal: mailSPIFFE, Method: "GET", Path: "/contacts"}
	m.F.Bind(t, m.Mail.ID)
	if d := check(t, m.F.Engine, req); d.Allowed || d.Status != 401 {
		t.Fatalf("unbound: %+v", d)
	}
	// Unbound, the emailer's token works from any principal again.
	if d := check(t, m.F.Engine, engine.Request{Token: m.MailT, Principal: strangerSPIFFE, Method: "GET", Path: "/contacts"}); !d.Allowed {
		t.Fatalf("token of an agent bound to nothing: %+v", d)
	}
	m.F.Bind(t, m.Orch.ID, orchSPIFFE, mailSPIFFE)
	if d := check(t, m.F.Engine, req); !d.Allowed || d.AgentID != m.Orch.ID {
		t.Fatalf("moved to the orchestrator: %+v", d)
	}
}

// TestPeerPrincipalDelegation: an agent known by its principal hands a
// task on like one with a token; the minted delegation token lives
// DelegationTTL (there is no agent token whose exp would bound it), and
// the target, known by its own principal, uses it.
func TestPeerPrincipalDelegation(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	m := peerMesh(t, enginetest.Options{Now: func() time.Time { return now }})
	m.F.Bind(t, m.Res.ID, "spiffe://cluster.local/ns/agents/sa/researcher")

	d := check(t, m.F.Engine, engine.Request{Principal: orchSPIFFE, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
	if !d.Allowed || d.AgentID != m.Orch.ID || d.TargetAgent != m.Res.ID || d.Delegation == "" {
		t.Fatalf("orchestrator by principal → researcher: %+v", d)
	}
	toRes := d.Delegation
	g, err := m.F.Cached.VerifyDelegation(toRes)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(engine.DefaultDelegationTTL); !g.ExpiresAt.Equal(want) {
		t.Fatalf("delegation expires at %v, want now + DelegationTTL = %v", g.ExpiresAt, want)
	}

	d = check(t, m.F.Engine, engine.Request{Principal: "spiffe://cluster.local/ns/agents/sa/researcher", Delegation: toRes,
		Method: "POST", Host: "emailer.mesh", Path: "/email?to=a@example.com"})
	if !d.Allowed || strings.Join(d.Chain, ",") != m.Orch.ID+","+m.Res.ID || d.TargetAgent != m.Mail.ID {
		t.Fatalf("researcher by principal, delegated → emailer: %+v", d)
	}
	// The delegation token is the researcher's: from the emailer's
	// principal it is someone else's.
	d = check(t, m.F.Engine, engine.Request{Principal: mailSPIFFE, Delegation: toRes, Method: "GET", Path: "/contacts"})
	if d.Allowed || d.Status != 403 {
		t.Fatalf("another agent's delegation token from the emailer's principal: %+v", d)
	}
}

// TestPeerPrincipalIsRecorded: a decision made on a principal alone is
// recorded under its agent, like one made on a token.
func TestPeerPrincipalIsRecorded(t *testing.T) {
	m := peerMesh(t, enginetest.Options{})
	d := check(t, m.F.Engine, engine.Request{Source: engine.SourceExtAuthzGRPC, Principal: mailSPIFFE, Method: "GET", Path: "/contacts"})
	mismatch := check(t, m.F.Engine, engine.Request{Source: engine.SourceExtAuthzGRPC, Token: m.ResT, Principal: mailSPIFFE, Method: "GET", Path: "/contacts"})
	var got []audit.Record
	if err := m.F.Store.ScanAudit(context.Background(), func(r audit.Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	byID := map[string]audit.Record{}
	for _, r := range got {
		byID[r.DecisionID] = r
	}
	if r := byID[d.ID]; r.AgentID != m.Mail.ID || r.AgentName != "emailer" || r.TrustTier != "verified" || r.Decision != "allow" {
		t.Fatalf("record of the principal's decision: %+v", r)
	}
	if r := byID[mismatch.ID]; r.AgentID != m.Res.ID || r.Reason != engine.ReasonIdentityMismatch || r.Status != 403 {
		t.Fatalf("record of the mismatch: %+v", r)
	}
}
