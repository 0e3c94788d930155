package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
)

// agentTests cover the agent methods one by one.
func agentTests() []test {
	return []test{
		{"CreateAgent/AssignsIDAndTimes", testCreateAssigns},
		{"CreateAgent/KeepsFields", testCreateKeepsFields},
		{"CreateAgent/Invalid", testCreateInvalid},
		{"CreateAgent/Conflict", testCreateConflict},
		{"GetAgent/NotFound", testGetNotFound},
		{"GetAgentByName", testGetByName},
		{"AgentByHost", testAgentByHost},
		{"AgentByHost/FollowsUpdates", testAgentByHostFollowsUpdates},
		{"AgentBySPIFFEID", testAgentBySPIFFEID},
		{"AgentBySPIFFEID/FollowsUpdates", testAgentBySPIFFEIDFollowsUpdates},
		{"AgentBySPIFFEID/Conflict", testSPIFFEIDConflict},
		{"ListAgents/Filters", testListFilters},
		{"ListAgents/Pages", testListPages},
		{"ListAgents/DefaultLimit", testListDefaultLimit},
		{"ListAgents/InvalidFilter", testListInvalidFilter},
		{"UpdateAgent", testUpdate},
		{"UpdateAgent/NotFound", testUpdateNotFound},
		{"UpdateAgent/Invalid", testUpdateInvalid},
		{"UpdateAgent/Conflict", testUpdateConflict},
		{"RevokeAgent", testRevoke},
		{"CountActiveAgents", testCountActive},
	}
}

func testCountActive(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	count := func() int64 {
		t.Helper()
		n, err := b.CountActiveAgents(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("empty store: %d", n)
	}
	a := mustCreate(t, b, newAgent("alpha"))
	mustCreate(t, b, newAgent("beta"))
	if err := b.RevokeAgent(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("two agents, one revoked: %d active", n)
	}
}

func testCreateAssigns(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	start := time.Now()
	got := mustCreate(t, b, newAgent("alpha"))
	if !strings.HasPrefix(got.ID, identity.IDPrefix) || len(got.ID) <= len(identity.IDPrefix) {
		t.Errorf("ID = %q, want %q followed by a random part", got.ID, identity.IDPrefix)
	}
	checkStamp(t, "CreatedAt", got.CreatedAt, start)
	if !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", got.UpdatedAt, got.CreatedAt)
	}
	// Empty, not nil: the admin API must render [] and {}, not null.
	if got.Tags == nil || got.Hosts == nil || got.Metadata == nil {
		t.Errorf("CreateAgent returned nil collections: %+v", got)
	}
	read, err := b.GetAgent(t.Context(), got.ID)
	if err != nil {
		t.Fatalf("GetAgent: %v", err)
	}
	if read.Tags == nil || read.Hosts == nil || read.Metadata == nil {
		t.Errorf("GetAgent returned nil collections: %+v", read)
	}
	if diff := cmp.Diff(got, read); diff != "" {
		t.Errorf("GetAgent differs from what CreateAgent returned (-created +read):\n%s", diff)
	}
	other := mustCreate(t, b, newAgent("beta"))
	if other.ID == got.ID {
		t.Errorf("two agents got the same id %q", got.ID)
	}
}

func testCreateKeepsFields(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	in := identity.Agent{
		ID:        "agent_fixed-id_1",
		Name:      "Billing.Agent-2",
		TrustTier: trust.Privileged,
		Tags:      []string{"team:payments", "pci", "team:payments"},
		Hosts:     []string{"billing.mesh.local", "billing-api.mesh.local", "10.0.0.7"},
		SPIFFEIDs: []string{"spiffe://cluster.local/ns/pay/sa/billing", "spiffe://other.example/billing"},
		Metadata:  map[string]string{"owner": "ops@example.com", "ünïcode": "✓ \"quoted\"\n"},
		Status:    identity.StatusRevoked,
		CreatedAt: time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC), // ignored: the store stamps
	}
	start := time.Now()
	got := mustCreate(t, b, in)
	checkStamp(t, "CreatedAt", got.CreatedAt, start)
	want := in
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.CreatedAt
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreateAgent (-want +got):\n%s", diff)
	}
	for name, get := range map[string]func() (identity.Agent, error){
		"GetAgent":       func() (identity.Agent, error) { return b.GetAgent(t.Context(), in.ID) },
		"GetAgentByName": func() (identity.Agent, error) { return b.GetAgentByName(t.Context(), in.Name) },
		"AgentByHost":    func() (identity.Agent, error) { return b.AgentByHost(t.Context(), "10.0.0.7") },
		"AgentBySPIFFEID": func() (identity.Agent, error) {
			return b.AgentBySPIFFEID(t.Context(), "spiffe://other.example/billing")
		},
	} {
		read, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, read); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

func testCreateInvalid(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	mustCreate(t, b, newAgent("seed", func(a *identity.Agent) { a.Hosts = []string{"seed.local"} }))
	before := snapshot(t, b)
	tests := []struct {
		name string
		mod  func(*identity.Agent)
	}{
		{"empty name", func(a *identity.Agent) { a.Name = "" }},
		{"name looks like an id", func(a *identity.Agent) { a.Name = "agent_x" }},
		{"name with space", func(a *identity.Agent) { a.Name = "a b" }},
		{"unknown tier", func(a *identity.Agent) { a.TrustTier = trust.Tier(9) }},
		{"empty status", func(a *identity.Agent) { a.Status = "" }},
		{"unknown status", func(a *identity.Agent) { a.Status = "paused" }},
		{"upper-case host", func(a *identity.Agent) { a.Hosts = []string{"Fresh.local"} }},
		{"host listed twice", func(a *identity.Agent) { a.Hosts = []string{"fresh.local", "fresh.local"} }},
		{"bad tag", func(a *identity.Agent) { a.Tags = []string{"has space"} }},
		{"SPIFFE ID with another scheme", func(a *identity.Agent) { a.SPIFFEIDs = []string{"https://cluster.local/ns/a/sa/b"} }},
		{"SPIFFE ID with a dot segment", func(a *identity.Agent) { a.SPIFFEIDs = []string{"spiffe://cluster.local/ns/../sa/b"} }},
		{"SPIFFE ID listed twice", func(a *identity.Agent) {
			a.SPIFFEIDs = []string{"spiffe://cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a/sa/b"}
		}},
		{"empty metadata key", func(a *identity.Agent) { a.Metadata = map[string]string{"": "x"} }},
		{"metadata not UTF-8", func(a *identity.Agent) { a.Metadata = map[string]string{"k": "\xff\xfe"} }},
		{"id without prefix", func(a *identity.Agent) { a.ID = "fresh" }},
		{"id that is only the prefix", func(a *identity.Agent) { a.ID = identity.IDPrefix }},
		{"id with slash", func(a *identity.Agent) { a.ID = "agent_a/b" }},
		{"id too long", func(a *identity.Agent) { a.ID = identity.IDPrefix + strings.Repeat("x", 100) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.CreateAgent(t.Context(), newAgent("fresh", tc.mod))
			wantErr(t, err, identity.ErrInvalidAgent, "CreateAgent")
		})
	}
	wantUnchanged(t, b, before)
}

func testCreateConflict(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	seed := mustCreate(t, b, newAgent("alpha", func(a *identity.Agent) { a.Hosts = []string{"alpha.local", "alpha-api.local"} }))
	before := snapshot(t, b)
	tests := []struct {
		name string
		in   identity.Agent
	}{
		{"same name", newAgent("alpha")},
		{"same id", newAgent("other", func(a *identity.Agent) { a.ID = seed.ID })},
		{"host taken", newAgent("other", func(a *identity.Agent) { a.Hosts = []string{"alpha.local"} })},
		{"one of several hosts taken", newAgent("other", func(a *identity.Agent) {
			a.Hosts = []string{"free.local", "alpha-api.local"}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.CreateAgent(t.Context(), tc.in)
			wantErr(t, err, identity.ErrConflict, "CreateAgent")
		})
	}
	wantUnchanged(t, b, before)
	// Names are case-sensitive.
	mustCreate(t, b, newAgent("Alpha", func(a *identity.Agent) { a.Hosts = []string{"alpha2.local"} }))
}

func testGetNotFound(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	mustCreate(t, b, newAgent("alpha"))
	for _, id := range []string{identity.NewAgentID(), "", "alpha", "agent_' OR 1=1 --"} {
		_, err := b.GetAgent(t.Context(), id)
		wantErr(t, err, identity.ErrNotFound, "GetAgent("+id+")")
	}
}

func testGetByName(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	a := mustCreate(t, b, newAgent("alpha"))
	got, err := b.GetAgentByName(t.Context(), "alpha")
	if err != nil || got.ID != a.ID {
		t.Fatalf("GetAgentByName(alpha) = %v, %v; want %s", got.ID, err, a.ID)
	}
	for _, name := range []string{"ALPHA", "alph", "", a.ID} {
		_, err := b.GetAgentByName(t.Context(), name)
		wantErr(t, err, identity.ErrNotFound, "GetAgentByName("+name+")")
	}
}

func testAgentByHost(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	a := mustCreate(t, b, newAgent("alpha", func(a *identity.Agent) { a.Hosts = []string{"alpha.mesh.local", "api.local"} }))
	r := mustCreate(t, b, newAgent("retired", func(a *identity.Agent) { a.Hosts = []string{"old.local"} }))
	if err := b.RevokeAgent(t.Context(), r.ID); err != nil {
		t.Fatalf("RevokeAgent: %v", err)
	}
	tests := []struct {
		host, want string
	}{
		{"alpha.mesh.local", a.ID},
		{"Alpha.Mesh.LOCAL", a.ID}, // DNS names ignore case
		{"api.local", a.ID},
		{"old.local", r.ID},         // revoked agents keep their hosts
		{"alpha.mesh.local:80", ""}, // the store matches exactly; callers normalise first
		{"unknown.local", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, err := b.AgentByHost(t.Context(), tc.host)
		if tc.want == "" {
			wantErr(t, err, identity.ErrNotFound, "AgentByHost("+tc.host+")")
			continue
		}
		if err != nil || got.ID != tc.want {
			t.Errorf("AgentByHost(%q) = %q, %v; want %q", tc.host, got.ID, err, tc.want)
		}
	}
}

func testAgentByHostFollowsUpdates(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	a := mustCreate(t, b, newAgent("alpha", func(a *identity.Agent) { a.Hosts = []string{"shared.local", "a.local"} }))
	c := mustCreate(t, b, newAgent("charlie"))
	a.Hosts = []string{"a.local"}
	if _, err := b.UpdateAgent(t.Context(), a); err != nil {
		t.Fatalf("UpdateAgent: %v", err)
	}
	_, err := b.AgentByHost(t.Context(), "shared.local")
	wantErr(t, err, identity.ErrNotFound, "AgentByHost after the host was dropped")
	c.Hosts = []string{"shared.local"}
	if _, err := b.UpdateAgent(t.Context(), c); err != nil {
		t.Fatalf("UpdateAgent taking a freed host: %v", err)
	}
	got, err := b.AgentByHost(t.Context(), "shared.local")
	if err != nil || got.ID != c.ID {
		t.Fatalf("AgentByHost(shared.local) = %q, %v; want %q", got.ID, err, c.ID)
	}
	if got, err := b.AgentByHost(t.Context(), "a.local"); err != nil || got.ID != a.ID {
		t.Fatalf("AgentByHost(a.local) = %q, %v; want %q", got.ID, err, a.ID)
	}
}
