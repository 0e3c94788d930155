package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

func names(agents []identity.Agent) []string {
	out := []string{}
	for _, a := range agents {
		out = append(out, a.Name)
	}
	return out
}

func tierPtr(t trust.Tier) *trust.Tier { return &t }

func testListFilters(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	seed := []identity.Agent{
		newAgent("alpha", func(a *identity.Agent) { a.Tags = []string{"x"} }),
		newAgent("Beta", func(a *identity.Agent) {
			a.TrustTier, a.Status, a.Tags = trust.Trusted, identity.StatusRevoked, []string{"x", "y"}
		}),
		newAgent("9lives", func(a *identity.Agent) { a.TrustTier = trust.Untrusted }),
		newAgent("Zeta", func(a *identity.Agent) { a.TrustTier, a.Tags = trust.Privileged, []string{"y"} }),
		newAgent("gamma", func(a *identity.Agent) { a.TrustTier, a.Tags = trust.Trusted, []string{"xy"} }),
	}
	for _, a := range seed {
		mustCreate(t, b, a)
	}
	tests := []struct {
		name   string
		filter store.AgentFilter
		want   []string
	}{
		// Byte-wise order: digits, then upper case, then lower case.
		{"all", store.AgentFilter{}, []string{"9lives", "Beta", "Zeta", "alpha", "gamma"}},
		{"tier", store.AgentFilter{Tier: tierPtr(trust.Trusted)}, []string{"Beta", "gamma"}},
		{"untrusted tier is a filter, not unset", store.AgentFilter{Tier: tierPtr(trust.Untrusted)}, []string{"9lives"}},
		{"active", store.AgentFilter{Status: identity.StatusActive}, []string{"9lives", "Zeta", "alpha", "gamma"}},
		{"revoked", store.AgentFilter{Status: identity.StatusRevoked}, []string{"Beta"}},
		{"tag matches whole tags", store.AgentFilter{Tag: "x"}, []string{"Beta", "alpha"}},
		{"tag y", store.AgentFilter{Tag: "y"}, []string{"Beta", "Zeta"}},
		{"unknown tag", store.AgentFilter{Tag: "nope"}, []string{}},
		{"tier and status", store.AgentFilter{Tier: tierPtr(trust.Trusted), Status: identity.StatusActive}, []string{"gamma"}},
		{"tier and tag", store.AgentFilter{Tier: tierPtr(trust.Trusted), Tag: "x"}, []string{"Beta"}},
		{"limit", store.AgentFilter{Limit: 2}, []string{"9lives", "Beta"}},
		{"after", store.AgentFilter{After: "Beta"}, []string{"Zeta", "alpha", "gamma"}},
		{"after a name not stored", store.AgentFilter{After: "B"}, []string{"Beta", "Zeta", "alpha", "gamma"}},
		{"after and limit", store.AgentFilter{After: "Beta", Limit: 1}, []string{"Zeta"}},
		{"after the last", store.AgentFilter{After: "gamma"}, []string{}},
		{"max limit", store.AgentFilter{Limit: store.MaxListLimit}, []string{"9lives", "Beta", "Zeta", "alpha", "gamma"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.ListAgents(t.Context(), tc.filter)
			if err != nil {
				t.Fatalf("ListAgents: %v", err)
			}
			if diff := cmp.Diff(tc.want, names(got)); diff != "" {
				t.Errorf("ListAgents(%+v) names (-want +got):\n%s", tc.filter, diff)
			}
		})
	}
	// Listed agents are complete, not just names.
	all, err := b.ListAgents(t.Context(), store.AgentFilter{Status: identity.StatusRevoked})
	if err != nil || len(all) != 1 {
		t.Fatalf("ListAgents(revoked) = %v, %v", all, err)
	}
	byID, err := b.GetAgent(t.Context(), all[0].ID)
	if err != nil {
		t.Fatalf("GetAgent: %v", err)
	}
	if diff := cmp.Diff(byID, all[0]); diff != "" {
		t.Errorf("listed agent differs from GetAgent (-get +list):\n%s", diff)
	}
}

func testListPages(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	var want []string
	for i := range 25 {
		want = append(want, mustCreate(t, b, newAgent(fmt.Sprintf("agent-%02d", i))).Name)
	}
	var got []string
	f := store.AgentFilter{Limit: 10}
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		page, err := b.ListAgents(t.Context(), f)
		if err != nil {
			t.Fatalf("ListAgents: %v", err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, names(page)...)
		f.After = page[len(page)-1].Name
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
}

func testListDefaultLimit(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	for i := range store.DefaultListLimit + 1 {
		mustCreate(t, b, newAgent(fmt.Sprintf("a%03d", i)))
	}
	got, err := b.ListAgents(t.Context(), store.AgentFilter{})
	if err != nil {
		t.Fatalf("ListAgents: %v", err)
	}
	if len(got) != store.DefaultListLimit {
		t.Errorf("ListAgents with Limit 0 returned %d agents, want DefaultListLimit (%d)", len(got), store.DefaultListLimit)
	}
}

func testListInvalidFilter(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	for _, f := range []store.AgentFilter{
		{Limit: -1},
		{Limit: store.MaxListLimit + 1},
		{Status: "paused"},
		{Tier: tierPtr(trust.Tier(7))},
	} {
		_, err := b.ListAgents(t.Context(), f)
		wantErr(t, err, store.ErrInvalidFilter, fmt.Sprintf("ListAgents(%+v)", f))
	}
}

func testUpdate(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	old := mustCreate(t, b, newAgent("alpha", func(a *identity.Agent) {
		a.Tags, a.Hosts, a.Metadata = []string{"x"}, []string{"alpha.local"}, map[string]string{"k": "v"}
	}))
	other := mustCreate(t, b, newAgent("other"))
	in := old
	in.Name, in.TrustTier, in.Status = "alpha-2", trust.Privileged, identity.StatusRevoked
	in.Tags, in.Hosts, in.Metadata = []string{"y", "z"}, []string{"new.local", "alpha.local"}, nil
	in.CreatedAt, in.UpdatedAt = time.Time{}, time.Time{} // ignored
	got, err := b.UpdateAgent(t.Context(), in)
	if err != nil {
		t.Fatalf("UpdateAgent: %v", err)
	}
	if !got.UpdatedAt.After(old.UpdatedAt) {
		t.Errorf("UpdatedAt = %v, want after %v", got.UpdatedAt, old.UpdatedAt)
	}
	want := in
	want.Metadata = map[string]string{}
	want.CreatedAt, want.UpdatedAt = old.CreatedAt, got.UpdatedAt
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UpdateAgent (-want +got):\n%s", diff)
	}
	read, err := b.GetAgent(t.Context(), old.ID)
	if err != nil {
		t.Fatalf("GetAgent: %v", err)
	}
	if diff := cmp.Diff(got, read); diff != "" {
		t.Errorf("GetAgent after update (-updated +read):\n%s", diff)
	}
	_, err = b.GetAgentByName(t.Context(), "alpha")
	wantErr(t, err, identity.ErrNotFound, "GetAgentByName(old name)")
	if o, err := b.GetAgent(t.Context(), other.ID); err != nil || !cmp.Equal(o, other) {
		t.Errorf("the other agent changed: %+v, %v", o, err)
	}
	// Every write is visible as a later updatedAt, however fast they come.
	prev := got.UpdatedAt
	for range 5 {
		next, err := b.UpdateAgent(t.Context(), got)
		if err != nil {
			t.Fatalf("UpdateAgent: %v", err)
		}
		if !next.UpdatedAt.After(prev) {
			t.Fatalf("UpdatedAt = %v after %v, want strictly later", next.UpdatedAt, prev)
		}
		prev = next.UpdatedAt
	}
}

func testUpdateNotFound(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	mustCreate(t, b, newAgent("alpha"))
	before := snapshot(t, b)
	_, err := b.UpdateAgent(t.Context(), newAgent("ghost", func(a *identity.Agent) { a.ID = identity.NewAgentID() }))
	wantErr(t, err, identity.ErrNotFound, "UpdateAgent")
	// Not found wins over a clash: there is nothing to update.
	_, err = b.UpdateAgent(t.Context(), newAgent("alpha", func(a *identity.Agent) { a.ID = identity.NewAgentID() }))
	wantErr(t, err, identity.ErrNotFound, "UpdateAgent")
	wantUnchanged(t, b, before)
}

func testUpdateInvalid(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	a := mustCreate(t, b, newAgent("alpha"))
	before := snapshot(t, b)
	for name, mod := range map[string]func(*identity.Agent){
		"empty id":      func(x *identity.Agent) { x.ID = "" },
		"empty name":    func(x *identity.Agent) { x.Name = "" },
		"unknown tier":  func(x *identity.Agent) { x.TrustTier = 200 },
		"bad status":    func(x *identity.Agent) { x.Status = "deleted" },
		"bad host":      func(x *identity.Agent) { x.Hosts = []string{"-bad-"} },
		"host twice":    func(x *identity.Agent) { x.Hosts = []string{"a.local", "a.local"} },
		"too many tags": func(x *identity.Agent) { x.Tags = make([]string, identity.MaxTags+1) },
	} {
		in := a
		mod(&in)
		_, err := b.UpdateAgent(t.Context(), in)
		wantErr(t, err, identity.ErrInvalidAgent, "UpdateAgent with "+name)
	}
	wantUnchanged(t, b, before)
}

func testUpdateConflict(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	a := mustCreate(t, b, newAgent("alpha", func(x *identity.Agent) {
		x.Hosts, x.SPIFFEIDs = []string{"alpha.local"}, []string{"spiffe://td/alpha"}
	}))
	mustCreate(t, b, newAgent("beta", func(x *identity.Agent) {
		x.Hosts, x.SPIFFEIDs = []string{"beta.local"}, []string{"spiffe://td/beta"}
	}))
	before := snapshot(t, b)
	for name, mod := range map[string]func(*identity.Agent){
		"other's name":      func(x *identity.Agent) { x.Name = "beta" },
		"other's host":      func(x *identity.Agent) { x.Hosts = []string{"alpha.local", "beta.local"} },
		"other's SPIFFE ID": func(x *identity.Agent) { x.SPIFFEIDs = []string{"spiffe://td/alpha", "spiffe://td/beta"} },
	} {
		in := a
		mod(&in)
		_, err := b.UpdateAgent(t.Context(), in)
		wantErr(t, err, identity.ErrConflict, "UpdateAgent to "+name)
	}
	wantUnchanged(t, b, before)
	// Keeping one's own name, hosts and SPIFFE IDs is no clash.
	if _, err := b.UpdateAgent(t.Context(), a); err != nil {
		t.Fatalf("UpdateAgent unchanged: %v", err)
	}
}

func testRevoke(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	a := mustCreate(t, b, newAgent("alpha"))
	other := mustCreate(t, b, newAgent("other"))
	if err := b.RevokeAgent(t.Context(), a.ID); err != nil {
		t.Fatalf("RevokeAgent: %v", err)
	}
	got, err := b.GetAgent(t.Context(), a.ID)
	if err != nil {
		t.Fatalf("GetAgent: %v", err)
	}
	if got.Status != identity.StatusRevoked || got.Active() {
		t.Errorf("Status = %q, want revoked", got.Status)
	}
	if !got.UpdatedAt.After(a.UpdatedAt) {
		t.Errorf("UpdatedAt = %v, want after %v", got.UpdatedAt, a.UpdatedAt)
	}
	want := a
	want.Status, want.UpdatedAt = identity.StatusRevoked, got.UpdatedAt
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RevokeAgent changed more than status and updatedAt (-want +got):\n%s", diff)
	}
	before := snapshot(t, b)
	if err := b.RevokeAgent(t.Context(), a.ID); err != nil {
		t.Fatalf("RevokeAgent again: %v", err)
	}
	wantUnchanged(t, b, before) // idempotent: not even updatedAt moves
	wantErr(t, b.RevokeAgent(t.Context(), identity.NewAgentID()), identity.ErrNotFound, "RevokeAgent(unknown)")
	wantUnchanged(t, b, before)
	if o, err := b.GetAgent(t.Context(), other.ID); err != nil || o.Status != identity.StatusActive {
		t.Errorf("the other agent: %+v, %v; want active", o, err)
	}
}
