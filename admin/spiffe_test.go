package admin_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/engine"
)

// TestAgentSPIFFEIDs: spiffeIds round-trip through create, show, list and
// update; a change takes effect on the engine at once (the caches are
// dropped); bad or taken IDs are refused, naming the problem, and change
// nothing.
func TestAgentSPIFFEIDs(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	const id, id2 = "spiffe://cluster.local/ns/research/sa/researcher", "spiffe://cluster.local/ns/research/sa/researcher-v2"
	created, err := e.c.CreateAgent(ctx, api.CreateAgentRequest{Name: "researcher", TrustTier: "verified", SPIFFEIDs: []string{id, id2}})
	if err != nil || !slices.Equal(created.SPIFFEIDs, []string{id, id2}) {
		t.Fatalf("CreateAgent = %+v, %v", created, err)
	}
	got, err := e.c.GetAgent(ctx, "researcher")
	if err != nil || !slices.Equal(got.SPIFFEIDs, []string{id, id2}) {
		t.Fatalf("GetAgent = %+v, %v", got, err)
	}
	list, err := e.c.ListAgents(ctx, client.AgentFilter{})
	if err != nil || len(list.Agents) != 1 || !slices.Equal(list.Agents[0].SPIFFEIDs, []string{id, id2}) {
		t.Fatalf("ListAgents = %+v, %v", list, err)
	}
	decide := func() engine.Decision {
		t.Helper()
		d, err := e.f.Engine.Check(ctx, &engine.Request{Source: engine.SourceExtAuthzGRPC, Principal: id2, Method: "GET", Path: "/docs/x"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := decide(); d.AgentID != created.ID || d.Status == 401 {
		t.Fatalf("the bound principal: %+v", d)
	}

	// Refused: a malformed ID, one listed twice, one another agent holds.
	other, err := e.c.CreateAgent(ctx, api.CreateAgentRequest{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		ids    []string
		status int
		want   string
	}{
		{"not a SPIFFE ID", []string{"spiffe://Cluster.local/ns/a"}, 400, "spiffeIds"},
		{"a dot segment", []string{"spiffe://cluster.local/ns/../sa/x"}, 400, "spiffeIds"},
		{"listed twice", []string{"spiffe://td/x", "spiffe://td/x"}, 400, "listed twice"},
		{"another agent's", []string{id}, 409, created.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := tc.ids
			_, err := e.c.UpdateAgent(ctx, other.ID, api.AgentPatch{SPIFFEIDs: &ids})
			if ae := apiError(t, err, tc.status); !strings.Contains(ae.Message, tc.want) {
				t.Fatalf("message %q does not mention %q", ae.Message, tc.want)
			}
			_, err = e.c.CreateAgent(ctx, api.CreateAgentRequest{Name: "fresh", SPIFFEIDs: tc.ids})
			apiError(t, err, tc.status)
		})
	}
	if got, err := e.c.GetAgent(ctx, other.ID); err != nil || len(got.SPIFFEIDs) != 0 {
		t.Fatalf("a refused update changed the agent: %+v, %v", got, err)
	}
	if _, err := e.c.GetAgent(ctx, "fresh"); err == nil {
		t.Fatal("a refused create stored the agent")
	}

	// Cleared: the principal is nobody at once.
	empty := []string{}
	updated, err := e.c.UpdateAgent(ctx, "researcher", api.AgentPatch{SPIFFEIDs: &empty})
	if err != nil || updated.SPIFFEIDs == nil || len(updated.SPIFFEIDs) != 0 {
		t.Fatalf("clearing: %+v, %v", updated, err)
	}
	if d := decide(); d.Status != http.StatusUnauthorized || d.AgentID != "" {
		t.Fatalf("the unbound principal: %+v", d)
	}
}
