package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
)

func TestAgentLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	start := time.Now()

	created, err := e.c.CreateAgent(ctx, api.CreateAgentRequest{
		Name: "orchestrator", TrustTier: "trusted", Tags: []string{"orchestrator"},
		Hosts: []string{"orchestrator.mesh"}, Metadata: map[string]string{"owner": "ops"}, TTL: api.Duration(2 * time.Hour),
	})
	if err != nil {
		t.Fatalf("CreateAgent: %v", err)
	}
	if !strings.HasPrefix(created.ID, identity.IDPrefix) || created.TrustTier != trust.Trusted || created.Status != api.AgentActive ||
		created.Hosts[0] != "orchestrator.mesh" || created.Metadata["owner"] != "ops" {
		t.Fatalf("created: %+v", created)
	}
	// The new token verifies, for this agent, for the lifetime asked.
	v := verify(t, e, created.Token)
	if v.Claims.Subject != created.ID || v.Tier != trust.Trusted || v.Claims.Name != "orchestrator" {
		t.Fatalf("token claims: %+v", v.Claims)
	}
	if life := created.ExpiresAt.Sub(start); life < 2*time.Hour-time.Minute || life > 2*time.Hour+time.Minute || !created.ExpiresAt.Equal(v.Claims.ExpiresAt) {
		t.Fatalf("expiresAt %v (token %v), want about 2h from now", created.ExpiresAt, v.Claims.ExpiresAt)
	}
	// Default tier: untrusted, the lowest.
	scraper, err := e.c.CreateAgent(ctx, api.CreateAgentRequest{Name: "scraper"})
	if err != nil || scraper.TrustTier != trust.Untrusted {
		t.Fatalf("default tier: %+v, %v", scraper, err)
	}

	// Show, by id and by name.
	for _, key := range []string{created.ID, "orchestrator"} {
		got, err := e.c.GetAgent(ctx, key)
		if err != nil || got.ID != created.ID || got.Name != "orchestrator" {
			t.Fatalf("GetAgent(%s) = %+v, %v", key, got, err)
		}
	}
	_, err = e.c.GetAgent(ctx, "nobody")
	apiError(t, err, http.StatusNotFound)

	// List, filtered, in name order.
	list, err := e.c.ListAgents(ctx, client.AgentFilter{})
	if err != nil || len(list.Agents) != 2 || list.Agents[0].Name != "orchestrator" || list.Agents[1].Name != "scraper" || list.Next != "" {
		t.Fatalf("ListAgents = %+v, %v", list, err)
	}
	list, err = e.c.ListAgents(ctx, client.AgentFilter{Trust: "trusted"})
	if err != nil || len(list.Agents) != 1 || list.Agents[0].ID != created.ID {
		t.Fatalf("ListAgents(trust=trusted) = %+v, %v", list, err)
	}
	list, err = e.c.ListAgents(ctx, client.AgentFilter{Limit: 1})
	if err != nil || len(list.Agents) != 1 || list.Next != "orchestrator" {
		t.Fatalf("ListAgents(limit=1) = %+v, %v", list, err)
	}
	if list, err = e.c.ListAgents(ctx, client.AgentFilter{After: list.Next}); err != nil || len(list.Agents) != 1 || list.Agents[0].Name != "scraper" {
		t.Fatalf("second page = %+v, %v", list, err)
	}

	// Update: only the fields given change.
	tier, tags := "verified", []string{"orchestrator", "planner"}
	updated, err := e.c.UpdateAgent(ctx, "orchestrator", api.AgentPatch{TrustTier: &tier, Tags: &tags})
	if err != nil || updated.TrustTier != trust.Verified || len(updated.Tags) != 2 || updated.Hosts[0] != "orchestrator.mesh" ||
		updated.Metadata["owner"] != "ops" || !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Fatalf("UpdateAgent = %+v, %v", updated, err)
	}
	// The demotion bites at once: the old token now verifies at the lower tier.
	if v := verify(t, e, created.Token); v.Tier != trust.Verified {
		t.Fatalf("effective tier after demotion = %v", v.Tier)
	}
	name := "conductor"
	if renamed, err := e.c.UpdateAgent(ctx, created.ID, api.AgentPatch{Name: &name}); err != nil || renamed.Name != "conductor" {
		t.Fatalf("rename: %+v, %v", renamed, err)
	}

	// A fresh token.
	tok, err := e.c.IssueToken(ctx, "conductor", time.Hour)
	if err != nil || tok.AgentID != created.ID {
		t.Fatalf("IssueToken = %+v, %v", tok, err)
	}
	if v := verify(t, e, tok.Token); v.Claims.Name != "conductor" {
		t.Fatalf("new token name = %q", v.Claims.Name)
	}

	// Revoke: answered with the revoked agent; its tokens stop at once.
	revoked, err := e.c.RevokeAgent(ctx, "conductor")
	if err != nil || revoked.Status != api.AgentRevoked {
		t.Fatalf("RevokeAgent = %+v, %v", revoked, err)
	}
	for _, token := range []string{created.Token, tok.Token} {
		if _, err := e.f.Cached.Verify(ctx, token); err == nil {
			t.Fatal("a revoked agent's token still verifies")
		}
	}
	_, err = e.c.IssueToken(ctx, created.ID, 0)
	apiError(t, err, http.StatusConflict)
	// A revoked agent is not edited: its record (updatedAt above all, which
	// the wasm filter's audit intake reads as "active until") stays as it
	// was revoked.
	newName, newTier := "reborn", "trusted"
	for _, p := range []api.AgentPatch{{Name: &newName}, {TrustTier: &newTier}} {
		_, err = e.c.UpdateAgent(ctx, created.ID, p)
		if ae := apiError(t, err, http.StatusConflict); !strings.Contains(ae.Message, "revoked") {
			t.Fatalf("PATCH of a revoked agent: %+v", ae)
		}
	}
	if again, err := e.c.GetAgent(ctx, created.ID); err != nil || !again.UpdatedAt.Equal(revoked.UpdatedAt) || again.Name != "conductor" {
		t.Fatalf("the revoked agent changed: %+v, %v (was %+v)", again, err, revoked)
	}
	list, err = e.c.ListAgents(ctx, client.AgentFilter{Status: "revoked"})
	if err != nil || len(list.Agents) != 1 || list.Agents[0].ID != created.ID {
		t.Fatalf("ListAgents(status=revoked) = %+v, %v", list, err)
	}

	e.mu.Lock()
	n := len(e.changes)
	e.mu.Unlock()
	if n != 5 { // 2 creates, 2 updates, 1 revoke
		t.Errorf("OnChange called %d times, want 5", n)
	}
}

func TestAgentBadInput(t *testing.T) {
	e := newEnv(t)
	e.agent(t, "taken", trust.Verified)
	ctx := t.Context()
	tests := []struct {
		name   string
		req    api.CreateAgentRequest
		status int
		want   string
	}{
		{"empty name", api.CreateAgentRequest{}, 400, "name"},
		{"name like an id", api.CreateAgentRequest{Name: "agent_x"}, 400, "reserved for ids"},
		{"bad tier", api.CreateAgentRequest{Name: "a", TrustTier: "admin"}, 400, "trustTier"},
		{"upper-case host", api.CreateAgentRequest{Name: "a", Hosts: []string{"A.mesh"}}, 400, "hosts"},
		{"ttl too long", api.CreateAgentRequest{Name: "a", TTL: api.Duration(365 * 24 * time.Hour)}, 400, "ttl"},
		{"name taken", api.CreateAgentRequest{Name: "taken"}, 409, "taken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.c.CreateAgent(ctx, tc.req)
			ae := apiError(t, err, tc.status)
			if !strings.Contains(ae.Message, tc.want) {
				t.Fatalf("message %q does not mention %q", ae.Message, tc.want)
			}
			if client.ExitCode(err) == client.ExitOK {
				t.Fatal("exit code 0 for an error")
			}
		})
	}
	list, err := e.c.ListAgents(ctx, client.AgentFilter{})
	if err != nil || len(list.Agents) != 1 {
		t.Fatalf("bad input stored agents: %+v, %v", list, err)
	}

	// Listing and patching refuse bad input too.
	_, err = e.c.ListAgents(ctx, client.AgentFilter{Trust: "boss"})
	apiError(t, err, 400)
	_, err = e.c.ListAgents(ctx, client.AgentFilter{Limit: 5000})
	apiError(t, err, 400)
	_, err = e.c.UpdateAgent(ctx, "taken", api.AgentPatch{})
	if ae := apiError(t, err, 400); !strings.Contains(ae.Message, "nothing to update") {
		t.Fatal(ae)
	}
	other := e.agent(t, "other", trust.Verified)
	taken := "taken"
	_, err = e.c.UpdateAgent(ctx, other.ID, api.AgentPatch{Name: &taken})
	apiError(t, err, 409)
	_, err = e.c.RevokeAgent(ctx, "nobody")
	apiError(t, err, 404)
}
